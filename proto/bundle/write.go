package bundle

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// NameError is WriteDir's error for a file whose name is not a relative
// path inside the directory.
type NameError struct{ Name string }

func (e *NameError) Error() string {
	return fmt.Sprintf("bundle: file name %q is not a relative path inside the bundle", e.Name)
}

// WriteDir writes files under dir, which must exist, making the
// subdirectories they need with dirPerm and the files with filePerm. Every
// name must be a local path (else a *NameError); all writes go through an
// os.Root, so even a symlink planted by an earlier file cannot lead a write
// outside dir.
func WriteDir(dir string, files []File, dirPerm, filePerm fs.FileMode) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer root.Close()
	for _, f := range files {
		name := filepath.FromSlash(f.Name)
		if !filepath.IsLocal(name) {
			return &NameError{Name: f.Name}
		}
		if d := filepath.Dir(name); d != "." {
			if err := root.MkdirAll(d, dirPerm); err != nil {
				return fmt.Errorf("write %s: %w", f.Name, err)
			}
		}
		if err := root.WriteFile(name, f.Content, filePerm); err != nil {
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
	}
	return nil
}
