package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// DepsKey is the Redis key under which the archive of an app's installed
// dependencies with content hash hash is stored (Route.deps).
func DepsKey(hash string) string { return "deps:" + hash }

// Limits of a dependency archive, unpacked.
const (
	MaxDepsBytes = 64 << 20
	MaxDepsFiles = 20000
)

// PackDeps returns the archive of the directory dir (the packages of an
// app's requirements, installed) and its content hash: a gzipped tar of
// dir's regular files and directories in name order, with no owners or
// times, so the same packages always give the same bytes. A symbolic link
// or any other kind of file is refused.
func PackDeps(dir string) (archive []byte, hash string, err error) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, "", err
	}
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			h.Typeflag, h.Mode, h.Name = tar.TypeDir, 0o755, h.Name+"/"
			return tw.WriteHeader(h)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(data))
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		default:
			return fmt.Errorf("%s is not a regular file or a directory", rel)
		}
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if err != nil {
		return nil, "", fmt.Errorf("pack dependencies: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:]), nil
}

// UnpackDeps checks that archive has content hash hash (ErrHashMismatch
// if not) and writes its files under dir, which must not exist yet:
// directories 0755 and files 0644, so that readers other than the writer
// can use them. It refuses names that leave dir, kinds of entries other
// than files and directories, and archives past MaxDepsBytes or
// MaxDepsFiles unpacked.
func UnpackDeps(archive []byte, hash, dir string) error {
	sum := sha256.Sum256(archive)
	if hex.EncodeToString(sum[:]) != hash {
		return ErrHashMismatch
	}
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return fmt.Errorf("unpack dependencies: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("unpack dependencies: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		return fmt.Errorf("unpack dependencies: %w", err)
	}
	tr := tar.NewReader(gz)
	var total int64
	for n := 0; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unpack dependencies: %w", err)
		}
		name := path.Clean(h.Name)
		if n >= MaxDepsFiles || name == "." || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("unpack dependencies: entry %q refused", h.Name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("unpack dependencies: %w", err)
			}
			if err := os.Chmod(p, 0o755); err != nil { // whatever the umask
				return fmt.Errorf("unpack dependencies: %w", err)
			}
		case tar.TypeReg:
			if total += h.Size; total > MaxDepsBytes {
				return fmt.Errorf("unpack dependencies: more than %d bytes", MaxDepsBytes)
			}
			if err := writeNew(p, tr); err != nil {
				return fmt.Errorf("unpack dependencies: %w", err)
			}
		default:
			return fmt.Errorf("unpack dependencies: entry %q is not a file or a directory", h.Name)
		}
	}
}

func writeNew(p string, r io.Reader) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chmod(0o644) // whatever the umask
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
