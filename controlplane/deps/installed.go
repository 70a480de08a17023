package deps

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/controlplane/validate"
	"github.com/gofastapi/gofastapi/proto/bundle"
)

// check returns the packages installed in site, after removing those the
// runners' Python has already (it finds its own first), or problems: a
// package that is neither allowed nor the platform's, a native extension,
// or too much.
func (r *Resolver) check(site string, allowed func(string) bool) ([]store.Package, []validate.Problem, error) {
	infos, err := filepath.Glob(filepath.Join(site, "*.dist-info"))
	if err != nil {
		return nil, nil, err
	}
	var packages []store.Package
	var probs []validate.Problem
	for _, info := range infos {
		p, err := readMetadata(info)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case allowed(p.Name):
			packages = append(packages, p)
		case r.platform[p.Name]:
			if err := removeInstalled(site, info); err != nil {
				return nil, nil, err
			}
		default:
			probs = append(probs, notAllowed(p))
		}
	}
	os.RemoveAll(filepath.Join(site, "bin")) // console scripts: runners do not run them
	var size int64
	files := 0
	err = filepath.WalkDir(site, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(site, p)
		if native(d.Name()) {
			probs = append(probs, validate.Problem{File: File, Message: fmt.Sprintf(
				"%s is a native extension; only pure-Python packages are allowed", filepath.ToSlash(rel))})
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size += info.Size()
		files++
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if size > bundle.MaxDepsBytes || files > bundle.MaxDepsFiles {
		probs = append(probs, validate.Problem{File: File, Message: fmt.Sprintf(
			"the packages take %d MB in %d files; at most %d MB and %d files are allowed", size>>20, files, bundle.MaxDepsBytes>>20, bundle.MaxDepsFiles)})
	}
	slices.SortFunc(packages, func(a, b store.Package) int { return strings.Compare(a.Name, b.Name) })
	return packages, probs, nil
}

func native(name string) bool {
	for _, ext := range []string{".so", ".pyd", ".dylib", ".dll"} {
		if strings.HasSuffix(name, ext) || strings.Contains(name, ext+".") {
			return true
		}
	}
	return false
}

// readMetadata reads the name and version of the installed distribution
// whose .dist-info directory is info.
func readMetadata(info string) (store.Package, error) {
	data, err := os.ReadFile(filepath.Join(info, "METADATA"))
	if err != nil {
		return store.Package{}, fmt.Errorf("dependencies: %w", err)
	}
	var p store.Package
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			break // the headers end
		}
		if v, ok := strings.CutPrefix(line, "Name: "); ok {
			p.Name = Normalize(strings.TrimSpace(v))
		}
		if v, ok := strings.CutPrefix(line, "Version: "); ok {
			p.Version = strings.TrimSpace(v)
		}
	}
	if p.Name == "" {
		return p, fmt.Errorf("dependencies: %s has no name", filepath.Base(info))
	}
	return p, nil
}

// removeInstalled removes the files that the distribution whose .dist-info
// directory is info installed in site (its RECORD), and the directory.
func removeInstalled(site, info string) error {
	data, err := os.ReadFile(filepath.Join(info, "RECORD"))
	if err != nil {
		return fmt.Errorf("dependencies: %w", err)
	}
	root, err := os.OpenRoot(site)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, line := range strings.Split(string(data), "\n") {
		name, _, _ := strings.Cut(line, ",")
		if name != "" {
			root.Remove(name) // a path leaving site is refused by the Root
		}
	}
	if err := os.RemoveAll(info); err != nil {
		return err
	}
	// Directories the removal emptied go too.
	entries, err := os.ReadDir(site)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			removeEmpty(filepath.Join(site, e.Name()))
		}
	}
	return nil
}

// removeEmpty removes dir if nothing but directories with nothing in them
// are under it.
func removeEmpty(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	empty := true
	for _, e := range entries {
		if !e.IsDir() || !removeEmpty(filepath.Join(dir, e.Name())) {
			empty = false
		}
	}
	return empty && os.Remove(dir) == nil
}

// topModules returns the modules importable from site's top: packages
// (directories) and single-file modules.
func topModules(site string) []string {
	entries, _ := os.ReadDir(site)
	var mods []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".dist-info") || name == "__pycache__" || strings.HasPrefix(name, "."):
		case e.IsDir():
			mods = append(mods, name)
		case strings.HasSuffix(name, ".py"):
			mods = append(mods, strings.TrimSuffix(name, ".py"))
		}
	}
	return mods
}
