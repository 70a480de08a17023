// Package depstest serves pure-Python wheels that tests build from a
// package index on a loopback port (the "simple" API of PEP 503): the
// stand-in for a public index, which the test machine cannot reach.
package depstest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
)

// Wheel is a pure-Python wheel an Index serves.
type Wheel struct {
	Name, Version string
	Files         map[string]string
	Requires      []string
	// Stored, when set, keeps the files uncompressed in the zip, so the
	// wheel is as large as they are.
	Stored bool
}

// Build returns the wheel's file name and bytes: a zip with the files and
// a .dist-info directory (METADATA, WHEEL, RECORD), as pip installs it.
func (w Wheel) Build(t testing.TB) (string, []byte) {
	t.Helper()
	escaped := strings.ReplaceAll(w.Name, "-", "_") // as wheel file and directory names have it
	dist := fmt.Sprintf("%s-%s.dist-info", escaped, w.Version)
	files := map[string]string{}
	for k, v := range w.Files {
		files[k] = v
	}
	meta := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", w.Name, w.Version)
	for _, r := range w.Requires {
		meta += "Requires-Dist: " + r + "\n"
	}
	files[dist+"/METADATA"] = meta
	files[dist+"/WHEEL"] = "Wheel-Version: 1.0\nGenerator: gofastapi-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	var record strings.Builder
	for _, k := range names {
		sum := sha256.Sum256([]byte(files[k]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", k, base64.RawURLEncoding.EncodeToString(sum[:]), len(files[k]))
	}
	record.WriteString(dist + "/RECORD,,\n")
	files[dist+"/RECORD"] = record.String()
	names = append(names, dist+"/RECORD")
	method := zip.Deflate
	if w.Stored {
		method = zip.Store
	}
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	for _, k := range names {
		f, err := z.CreateHeader(&zip.FileHeader{Name: k, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(files[k]))
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s-%s-py3-none-any.whl", escaped, w.Version), buf.Bytes()
}

// Index is a package index serving wheels until the test ends.
type Index struct {
	URL  string       // of the simple API
	Hits atomic.Int64 // requests it answered
}

// StartIndex starts an Index serving wheels.
func StartIndex(t testing.TB, wheels ...Wheel) *Index {
	t.Helper()
	idx := &Index{}
	pages := map[string][]string{} // project -> links
	files := map[string][]byte{}
	for _, w := range wheels {
		name, data := w.Build(t)
		sum := sha256.Sum256(data)
		files[name] = data
		pages[w.Name] = append(pages[w.Name], fmt.Sprintf(`<a href="/files/%s#sha256=%s">%s</a>`, name, hex.EncodeToString(sum[:]), name))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idx.Hits.Add(1)
		if name, ok := strings.CutPrefix(r.URL.Path, "/files/"); ok && files[name] != nil {
			w.Write(files[name])
			return
		}
		project := strings.Trim(strings.TrimPrefix(r.URL.Path, "/simple/"), "/")
		links, ok := pages[project]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<!DOCTYPE html><html><body>\n%s\n</body></html>\n", strings.Join(links, "<br>\n"))
	}))
	t.Cleanup(srv.Close)
	idx.URL = srv.URL + "/simple/"
	return idx
}
