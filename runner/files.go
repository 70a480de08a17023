package runner

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/gofastapi/gofastapi/proto/bundle"
)

// writeFiles writes files under dir, creating it and any subdirectories
// (see bundle.WriteDir: no name, not even through a symlink planted by an
// earlier file, leads a write outside dir).
func writeFiles(dir string, files []bundle.File) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create app dir: %w", err)
	}
	err := bundle.WriteDir(dir, files, 0o700, 0o600)
	if bad := (*bundle.NameError)(nil); errors.As(err, &bad) {
		return failure(errBundleCorrupt, "bundle file name %q is not a relative path inside the app", bad.Name)
	}
	return err
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
