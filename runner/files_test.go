package runner

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gofastapi/gofastapi/proto/bundle"
)

func TestModuleName(t *testing.T) {
	tests := []struct {
		entrypoint string
		want       string
		wantErr    bool
	}{
		{entrypoint: "app.py", want: "app"},
		{entrypoint: "pkg/main.py", want: "pkg.main"},
		{entrypoint: "a/b/c.py", want: "a.b.c"},
		{entrypoint: "pkg/__init__.py", want: "pkg"},
		{entrypoint: "_private.py", want: "_private"},
		{entrypoint: "app.txt", wantErr: true},
		{entrypoint: "app", wantErr: true},
		{entrypoint: "/abs/app.py", wantErr: true},
		{entrypoint: "../app.py", wantErr: true},
		{entrypoint: "pkg/../app.py", wantErr: true},
		{entrypoint: "my-app.py", wantErr: true},
		{entrypoint: "1app.py", wantErr: true},
		{entrypoint: "pkg.v2/app.py", wantErr: true},
		{entrypoint: ".py", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.entrypoint, func(t *testing.T) {
			got, err := moduleName(tt.entrypoint)
			if tt.wantErr {
				if !errors.Is(err, errInvalidRequest) {
					t.Errorf("moduleName(%q) = %q, %v; want an invalid-request error", tt.entrypoint, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("moduleName(%q) = %q, %v; want %q", tt.entrypoint, got, err, tt.want)
			}
		})
	}
}

func TestWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	files := []bundle.File{
		{Name: "app.py", Content: []byte("import routes\n")},
		{Name: "pkg/sub/mod.py", Content: []byte("x = 1\n")},
		{Name: "static/empty.txt", Content: nil},
	}
	if err := writeFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Name)))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(f.Content), string(got)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", f.Name, diff)
		}
	}
}

func TestWriteFilesRefusesEscapes(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(dir string)
		file  string
	}{
		{name: "parent", file: "../escaped.py"},
		{name: "absolute", file: filepath.Join(outside, "escaped.py")},
		{name: "through a symlink", file: "link/escaped.py", setup: func(dir string) {
			if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(base, "app", string(rune('a'+i)))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(dir)
			}
			if err := writeFiles(dir, []bundle.File{{Name: tt.file, Content: []byte("x")}}); err == nil {
				t.Errorf("writeFiles(%q) succeeded, want an error", tt.file)
			}
			entries, err := os.ReadDir(outside)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Errorf("files written outside the app dir: %v", entries)
			}
		})
	}
}
