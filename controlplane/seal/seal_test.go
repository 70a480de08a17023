package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "platform.key")
	k, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	sealed := k.Seal([]byte("s3cret"), "user-1")
	if bytes.Contains(sealed, []byte("s3cret")) {
		t.Error("sealed value contains the plaintext")
	}
	k2, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.Open(sealed, "user-1"); err != nil || string(got) != "s3cret" {
		t.Errorf("reloaded key opens %q, %v", got, err)
	}
	if _, err := k2.Open(sealed, "user-2"); !errors.Is(err, ErrOpen) {
		t.Errorf("other context: %v, want ErrOpen", err)
	}
	other, _ := NewKey(bytes.Repeat([]byte{1}, KeySize))
	if _, err := other.Open(sealed, "user-1"); !errors.Is(err, ErrOpen) {
		t.Errorf("other key: %v, want ErrOpen", err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadOrCreate(path); err == nil {
		t.Error("a world-readable key file was accepted")
	}
}
