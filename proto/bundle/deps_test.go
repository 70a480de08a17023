package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDepsRoundTrip(t *testing.T) {
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "greet", "sub"), 0o700))
	must(t, os.WriteFile(filepath.Join(src, "greet", "__init__.py"), []byte("def hi(): return 'hi'\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(src, "greet", "sub", "data.txt"), []byte("x"), 0o600))
	must(t, os.WriteFile(filepath.Join(src, "six.py"), []byte("# six\n"), 0o600))

	a, hash, err := PackDeps(src)
	must(t, err)
	again, hash2, err := PackDeps(src)
	must(t, err)
	if hash != hash2 || !bytes.Equal(a, again) {
		t.Fatal("packing the same files twice gave different archives")
	}
	dst := filepath.Join(t.TempDir(), "deps")
	must(t, UnpackDeps(a, hash, dst))
	got, err := os.ReadFile(filepath.Join(dst, "greet", "sub", "data.txt"))
	if err != nil || string(got) != "x" {
		t.Fatalf("unpacked data.txt = %q, %v", got, err)
	}
	st, err := os.Stat(filepath.Join(dst, "six.py"))
	must(t, err)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("six.py mode = %v, want 0644 (readable by the runners' users)", st.Mode().Perm())
	}

	if err := UnpackDeps(append(bytes.Clone(a), 0), hash, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("a changed archive: err = %v, want ErrHashMismatch", err)
	}
	if err := UnpackDeps(a, hash, dst); err == nil {
		t.Error("unpacking into an existing directory succeeded")
	}
}

func TestDepsRefusesEscapesAndLinks(t *testing.T) {
	for name, h := range map[string]*tar.Header{
		"parent":   {Name: "../evil.py", Typeflag: tar.TypeReg, Mode: 0o644},
		"absolute": {Name: "/etc/evil.py", Typeflag: tar.TypeReg, Mode: 0o644},
		"symlink":  {Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			gz := gzip.NewWriter(&buf)
			tw := tar.NewWriter(gz)
			must(t, tw.WriteHeader(h))
			must(t, tw.Close())
			must(t, gz.Close())
			sum := sha256.Sum256(buf.Bytes())
			dir := filepath.Join(t.TempDir(), "deps")
			if err := UnpackDeps(buf.Bytes(), hex.EncodeToString(sum[:]), dir); err == nil {
				t.Fatalf("%s entry was unpacked", name)
			}
		})
	}
	src := t.TempDir()
	must(t, os.Symlink("/etc/passwd", filepath.Join(src, "link")))
	if _, _, err := PackDeps(src); err == nil {
		t.Error("PackDeps packed a symbolic link")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
