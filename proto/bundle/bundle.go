package bundle

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// ErrHashMismatch is returned by Decode when a bundle's files do not hash to
// the expected version: the bundle was corrupted or replaced.
var ErrHashMismatch = errors.New("bundle: content does not match its hash")

// File is one file of a bundle.
type File struct {
	Name    string
	Content []byte
}

// Key is the Redis key a bundle with the given hash is stored under.
func Key(hash string) string { return "bundle:" + hash }

// CompiledKey is the Redis key under which the compiled modules of the
// bundle with the given hash are stored: a bundle of __pycache__ files,
// checked against the hash its route carries (Route.compiled). The last
// deploy of the bundle writes them; they go with the bundle.
func CompiledKey(hash string) string { return "compiled:" + hash }

// Hash returns the lowercase hex sha256 content address of files. It does not
// depend on the order of files.
func Hash(files []File) string {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, f := range sorted {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(f.Name)))])
		h.Write([]byte(f.Name))
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(f.Content)))])
		h.Write(f.Content)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Encode returns the bytes stored in Redis for files.
func Encode(files []File) ([]byte, error) {
	b := &v1.Bundle{Files: make([]*v1.BundleFile, len(files))}
	for i, f := range files {
		b.Files[i] = &v1.BundleFile{Name: f.Name, Content: f.Content}
	}
	return proto.Marshal(b)
}

// Decode parses data as stored by Encode and verifies that its files hash to
// want. It returns ErrHashMismatch when they do not.
func Decode(data []byte, want string) ([]File, error) {
	var b v1.Bundle
	if err := proto.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("bundle %s: decode: %w", want, err)
	}
	files := make([]File, len(b.Files))
	for i, f := range b.Files {
		files[i] = File{Name: f.GetName(), Content: f.GetContent()}
	}
	if got := Hash(files); got != want {
		return nil, fmt.Errorf("%w: want %s, got %s", ErrHashMismatch, want, got)
	}
	return files, nil
}

// FromProto returns the API's files as bundle files.
func FromProto(fs []*v1.File) []File {
	out := make([]File, len(fs))
	for i, f := range fs {
		out[i] = File{Name: f.GetName(), Content: f.GetContent()}
	}
	return out
}
