// Package bundlecache keeps app versions' files on the runner host, already
// decoded and checked, so that a runner's agent links them into its app
// directory instead of fetching the bundle from Redis, checking its hash
// and writing its files (about 1.2 ms of a cold start on the bench's 2-core
// VM, where each Redis round trip costs two process wake-ups).
//
// The platform process writes the cache (Cache): when a deploy publishes a
// version, and after a cold start that had to fetch. Agents only read it
// (Link). An entry is a directory named after its content hash, made
// complete under a temporary name and renamed into place, so a reader sees
// all of it or nothing. Its files are read-only and owned by the platform's
// user: linked into a runner's directory, the app reads them as before but
// cannot change what other runners of its version link, which is why the
// cache is used only when runners run as users of their own. The cache's
// directory is private to the platform's user, so no runner can reach
// another app's entries.
package bundlecache

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/gofastapi/gofastapi/proto/bundle"
)

// BundleDir is where in cache dir root the files of bundle version are.
func BundleDir(root, version string) string { return filepath.Join(root, "bundle-"+version) }

// CompiledDir is where in root the compiled modules with content hash
// compiled (bundle.Hash of them; see Route.compiled) are.
func CompiledDir(root, compiled string) string { return filepath.Join(root, "compiled-"+compiled) }

// Cache writes entries into its directory and keeps their total size under
// a budget, removing the oldest first. Its methods are safe for concurrent
// use.
type Cache struct {
	root string
	max  int64

	mu    sync.Mutex
	size  int64
	order *list.List // of *entry, newest first
	byDir map[string]*list.Element
}

type entry struct {
	dir  string
	size int64
}

// New returns a Cache in root, which it creates private to this user (it
// must be on the same file system as the runners' directories: entries are
// hard-linked into them), keeping at most maxBytes of files.
func New(root string, maxBytes int64) (*Cache, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("bundle cache: %w", err)
	}
	if err := os.Chmod(root, 0o700); err != nil {
		return nil, fmt.Errorf("bundle cache: %w", err)
	}
	return &Cache{root: root, max: maxBytes, order: list.New(), byDir: map[string]*list.Element{}}, nil
}

// Root is the directory agents read entries from.
func (c *Cache) Root() string { return c.root }

// PutBundle keeps the files of bundle version, which the caller has
// checked hash to it (they come from a deploy or from bundle.Decode).
func (c *Cache) PutBundle(version string, files []bundle.File) error {
	return c.put(BundleDir(c.root, version), files)
}

// PutCompiled keeps compiled modules whose bundle.Hash is compiled.
func (c *Cache) PutCompiled(compiled string, files []bundle.File) error {
	return c.put(CompiledDir(c.root, compiled), files)
}

// Has reports whether the cache holds version's files and, when compiled is
// not empty, those compiled modules.
func (c *Cache) Has(version, compiled string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byDir[BundleDir(c.root, version)] == nil {
		return false
	}
	return compiled == "" || c.byDir[CompiledDir(c.root, compiled)] != nil
}

// RemoveBundle removes version's files. Runners that linked them keep
// their links.
func (c *Cache) RemoveBundle(version string) error {
	dir := BundleDir(c.root, version)
	c.mu.Lock()
	if el := c.byDir[dir]; el != nil {
		c.forgetLocked(el)
	}
	c.mu.Unlock()
	return os.RemoveAll(dir)
}

func (c *Cache) put(dir string, files []bundle.File) error {
	var size int64
	for _, f := range files {
		size += int64(len(f.Content))
	}
	if size > c.max {
		return nil
	}
	c.mu.Lock()
	held := c.byDir[dir] != nil
	c.mu.Unlock()
	if held {
		return nil // entries are named by their content: nothing changes
	}
	if err := write(dir, files); err != nil {
		return fmt.Errorf("bundle cache: %w", err)
	}
	var evicted []string
	c.mu.Lock()
	if c.byDir[dir] == nil {
		c.byDir[dir] = c.order.PushFront(&entry{dir: dir, size: size})
		c.size += size
	}
	for c.size > c.max {
		el := c.order.Back()
		evicted = append(evicted, el.Value.(*entry).dir)
		c.forgetLocked(el)
	}
	c.mu.Unlock()
	for _, d := range evicted {
		_ = os.RemoveAll(d)
	}
	return nil
}

func (c *Cache) forgetLocked(el *list.Element) {
	e := el.Value.(*entry)
	c.order.Remove(el)
	delete(c.byDir, e.dir)
	c.size -= e.size
}

// write makes dir with files in it: read-only files in a temporary
// directory beside it, renamed to dir once complete. If dir exists already
// (another write of the same content won), it is left as it is.
func write(dir string, files []bundle.File) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // left only if the rename did not happen
	if err := bundle.WriteDir(tmp, files, 0o755, 0o444); err != nil {
		return err
	}
	// The temporary directory is 0700 (MkdirTemp); the entry's directories
	// must be passable for the runners' users that open linked files by
	// their own paths, which never go through the cache: 0755 is harmless
	// under the cache's private root.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	// Renaming onto a directory that has entries fails with ENOTEMPTY,
	// which Go does not map to fs.ErrExist.
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		return err
	}
	return nil
}

// Link hard-links the cached files of bundle version and, when compiled is
// not empty, those compiled modules into appDir (copies them when appDir is
// on another file system), making the directories
// they need there with mkdir (which it calls for each one it creates, to
// give it to the runner's user). It reports false, having linked nothing,
// when the cache does not hold all of them; modules is how many compiled
// modules it linked. On an error appDir may hold some of the files.
func Link(root, version, compiled, appDir string, mkdir func(path string) error) (ok bool, modules int, err error) {
	src := BundleDir(root, version)
	dirs := []string{src}
	if compiled != "" {
		dirs = append(dirs, CompiledDir(root, compiled))
	}
	for _, d := range dirs {
		if _, err := os.Lstat(d); errors.Is(err, fs.ErrNotExist) {
			return false, 0, nil
		} else if err != nil {
			return false, 0, err
		}
	}
	for i, d := range dirs {
		n, err := linkTree(d, appDir, mkdir)
		if err != nil {
			return false, 0, err
		}
		if i == 1 {
			modules = n
		}
	}
	return true, modules, nil
}

// linkTree links (or copies) every file under src to the same place under
// dst and returns how many it linked. dst exists; directories already there (a
// compiled modules' __pycache__ beside a bundle's) are used as they are.
func linkTree(src, dst string, mkdir func(path string) error) (files int, err error) {
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			if err := os.Mkdir(to, 0o700); errors.Is(err, fs.ErrExist) {
				return nil
			} else if err != nil {
				return err
			}
			return mkdir(to)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		files++
		if err := os.Link(p, to); !errors.Is(err, syscall.EXDEV) {
			return err
		}
		// The runner's directory is a file system of its own (its
		// --app-disk): a copy, as read-only as the cached file.
		return copyFile(p, to)
	})
	return files, err
}

// copyFile copies src to a new file dst with src's mode.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
