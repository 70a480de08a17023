// Package web serves the web editor, a single-page app built by Vite into
// web/dist (make build) and embedded in the gofastapi binary, so the
// platform needs no other file at run time and the editor works offline.
//
// Invariants:
//   - Only GET and HEAD are answered; the API's procedures are routed
//     before this handler, so it only sees paths nothing else claimed.
//   - A path naming a built file gets that file; files under /assets/ have
//     content hashes in their names and are cached for a year. The app's
//     own routes (see routes) get index.html (never cached), and the app
//     routes by the path. Anything else is 404, so the apex's other paths
//     (such as /debug/) stay as they were.
//   - Text files (scripts, styles, the page) are gzipped once, at start,
//     and sent gzipped to clients that accept it: the editor's script is
//     about a third of its size on the wire.
//   - Pages carry a Content-Security-Policy that allows scripts, styles,
//     fonts and connections from the platform's own origin only.
package web

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed all:dist
var dist embed.FS

// notBuilt is served in place of index.html when web/dist holds no build.
const notBuilt = `<!doctype html><meta charset="utf-8"><title>gofastapi</title>
<p>The web editor is not built into this binary. Run <code>make build</code>; the API works without it.</p>`

// csp keeps the editor to its own origin. Styles may be inline because
// CodeMirror writes its themes into style elements; frames may be any
// http(s) page because the side preview shows the app at its own URL.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; frame-src http: https:; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// routes are the first path segments of the editor's pages ("" is /).
var routes = []string{"", "login", "signup", "apps", "new", "templates", "database", "admin", "account"}

// isRoute reports whether the cleaned path name (without its leading /)
// is one of the editor's pages.
func isRoute(name string) bool {
	first, _, _ := strings.Cut(name, "/")
	for _, r := range routes {
		if first == r {
			return true
		}
	}
	return false
}

// Handler serves the built editor.
func Handler() http.Handler {
	root, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is embedded above: cannot happen
	}
	index, err := fs.ReadFile(root, "index.html")
	if err != nil {
		index = []byte(notBuilt)
	}
	files := http.FileServerFS(root)
	gz := gzipped(root)
	gz["index.html"] = gzipBytes(index)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.NotFound(w, r)
			return
		}
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if name != "" && name != "index.html" {
			if st, err := fs.Stat(root, name); err == nil && !st.IsDir() {
				if strings.HasPrefix(name, "assets/") {
					h.Set("Cache-Control", "public, max-age=31536000, immutable")
				}
				if serveGzip(w, r, name, gz[name]) {
					return
				}
				files.ServeHTTP(w, r)
				return
			}
		}
		if !isRoute(name) {
			http.NotFound(w, r)
			return
		}
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "same-origin")
		if serveGzip(w, r, "index.html", gz["index.html"]) {
			return
		}
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index))
	})
}

// gzipped compresses the text files of root, by name.
func gzipped(root fs.FS) map[string][]byte {
	out := map[string][]byte{}
	fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch path.Ext(name) {
		case ".js", ".css", ".html", ".svg", ".json", ".txt":
			if b, err := fs.ReadFile(root, name); err == nil {
				out[name] = gzipBytes(b)
			}
		}
		return nil
	})
	return out
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// serveGzip sends the gzipped body of name when there is one and the
// client accepts gzip; it reports whether it did. Range requests get the
// plain file.
func serveGzip(w http.ResponseWriter, r *http.Request, name string, body []byte) bool {
	w.Header().Add("Vary", "Accept-Encoding")
	if body == nil || r.Header.Get("Range") != "" || !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		return false
	}
	h := w.Header()
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Encoding", "gzip")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	return true
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip (and
// does not give it q=0).
func acceptsGzip(v string) bool {
	for _, part := range strings.Split(v, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.TrimSpace(params), "q=")
		if !ok {
			return true
		}
		f, err := strconv.ParseFloat(q, 64)
		return err == nil && f > 0
	}
	return false
}
