package secretbox

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	k, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	sealed, err := k.Seal([]byte("hunter2"), "env:a1:TOKEN")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("sealed value contains the plaintext")
	}
	pt, err := k.Open(sealed, "env:a1:TOKEN")
	if err != nil || string(pt) != "hunter2" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := k.Open(sealed, "env:a2:TOKEN"); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open with another label: %v, want ErrOpen", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := k.Open(sealed, "env:a1:TOKEN"); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open of altered value: %v, want ErrOpen", err)
	}
}

func TestRotateKeepsOldValuesReadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	old, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := old.Seal([]byte("v1"), "l")
	if err := Rotate(path); err != nil {
		t.Fatal(err)
	}
	k, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := k.Open(sealed, "l"); err != nil || string(pt) != "v1" {
		t.Fatalf("old value after rotation: %q, %v", pt, err)
	}
	fresh, _ := k.Seal([]byte("v2"), "l")
	if _, err := old.Open(fresh, "l"); !errors.Is(err, ErrOpen) {
		t.Fatalf("new value opened with the old keyring only: %v; it must be sealed with the new primary key", err)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	_, err := Parse([]byte("# keys\nnot-hex\n"))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("line 2")) {
		t.Fatalf("err = %v, want one naming line 2", err)
	}
	if _, err := Parse([]byte("\n")); err == nil {
		t.Fatal("empty key file accepted")
	}
}
