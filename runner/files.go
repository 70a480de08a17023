package runner

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/gofastapi/gofastapi/proto/bundle"
)

// writeFiles writes files under dir, creating it and any subdirectories.
// Every name must be a local path; all writes go through an os.Root, so even
// a symlink planted by an earlier file cannot lead a write outside dir.
func writeFiles(dir string, files []bundle.File) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create app dir: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open app dir: %w", err)
	}
	defer root.Close()
	for _, f := range files {
		name := filepath.FromSlash(f.Name)
		if !filepath.IsLocal(name) {
			return failure(errBundleCorrupt, "bundle file name %q is not a relative path inside the app", f.Name)
		}
		if d := filepath.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o700); err != nil {
				return fmt.Errorf("write %s: %w", f.Name, err)
			}
		}
		if err := root.WriteFile(name, f.Content, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
	}
	return nil
}

// moduleName returns the Python module that entrypoint (a .py file relative
// to the app dir, with / separators) is imported as: "app.py" is "app",
// "pkg/main.py" is "pkg.main", "pkg/__init__.py" is "pkg".
func moduleName(entrypoint string) (string, error) {
	p, ok := strings.CutSuffix(entrypoint, ".py")
	if !ok || !filepath.IsLocal(entrypoint) || path.Clean(entrypoint) != entrypoint {
		return "", failure(errInvalidRequest, "entrypoint %q must be a .py file inside the app, like app.py or pkg/main.py", entrypoint)
	}
	parts := strings.Split(p, "/")
	if len(parts) > 1 && parts[len(parts)-1] == "__init__" {
		parts = parts[:len(parts)-1]
	}
	for _, part := range parts {
		if !isIdentifier(part) {
			return "", failure(errInvalidRequest, "entrypoint %q cannot be imported: %q is not a Python identifier", entrypoint, part)
		}
	}
	return strings.Join(parts, "."), nil
}

// isIdentifier approximates Python's str.isidentifier: a letter or underscore,
// then letters, digits or underscores.
func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r != '_' && !unicode.IsLetter(r) && (i == 0 || !unicode.IsDigit(r)) {
			return false
		}
	}
	return true
}

// hasFile reports whether files contains name.
func hasFile(files []bundle.File, name string) bool {
	for _, f := range files {
		if f.Name == name {
			return true
		}
	}
	return false
}
