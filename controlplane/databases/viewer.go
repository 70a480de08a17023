package databases

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/controlplane/store"
)

// ViewerHostPrefix starts the host of a user's data viewer:
// mongo-{username}.{domain}.
const ViewerHostPrefix = "mongo-"

// IsViewerHost reports whether host (with or without a port) is a data
// viewer's.
func IsViewerHost(host string) bool {
	return strings.HasPrefix(strings.ToLower(host), ViewerHostPrefix)
}

// viewerPage is the most documents one page shows.
const viewerPage = 50

// Viewer returns the read-only data viewer: at mongo-{username}.{domain},
// behind HTTP basic auth with the credentials RotateViewerCredentials gave
// that user, it shows their databases, collections and documents. It never
// writes.
func (s *Service) Viewer() http.Handler {
	return http.HandlerFunc(s.serveViewer)
}

func (s *Service) serveViewer(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	label, _, _ := strings.Cut(strings.ToLower(host), ".")
	username := strings.TrimPrefix(label, ViewerHostPrefix)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "the data viewer is read-only", http.StatusMethodNotAllowed)
		return
	}
	u, ok := s.viewerAuth(r.Context(), username, r)
	if !ok {
		h.Set("WWW-Authenticate", `Basic realm="gofastapi data viewer", charset="UTF-8"`)
		http.Error(w, "sign in with your data viewer credentials (gofastapi db viewer-credentials)", http.StatusUnauthorized)
		return
	}
	data, err := s.viewerData(r.Context(), u, r)
	if errors.Is(err, errNoDatabase) {
		http.Error(w, "no such database", http.StatusNotFound)
		return
	} else if err != nil {
		s.cfg.Logger.Error("data viewer", "user", username, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	if err := viewerTmpl.Execute(w, data); err != nil {
		s.cfg.Logger.Warn("data viewer: render", "err", err)
	}
}

// viewerAuth checks the request's basic auth against username's viewer
// credentials.
func (s *Service) viewerAuth(ctx context.Context, username string, r *http.Request) (*store.User, bool) {
	user, pw, ok := r.BasicAuth()
	if !ok || user != username || username == "" {
		return nil, false
	}
	u, err := s.cfg.Store.UserByName(ctx, username)
	if err != nil || u.Deleting {
		return nil, false
	}
	a, err := s.cfg.Store.DBAccount(ctx, u.ID)
	if err != nil || len(a.ViewerHash) == 0 {
		return nil, false
	}
	sum := sha256.Sum256([]byte(pw))
	return u, subtle.ConstantTimeCompare(sum[:], a.ViewerHash) == 1
}

type viewerData struct {
	User        string
	Databases   []*store.Database
	DB          *store.Database
	Collections []string
	Coll        string
	Docs        []string
	Total       int64
	Skip, Next  int64
	Prev        int64
	HasPrev     bool
	HasNext     bool
}

func (s *Service) viewerData(ctx context.Context, u *store.User, r *http.Request) (*viewerData, error) {
	q := r.URL.Query()
	dbs, err := s.cfg.Store.ListDatabases(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	v := &viewerData{User: u.Username, Databases: dbs}
	ref := q.Get("db")
	if ref == "" {
		return v, nil
	}
	d, err := s.cfg.Store.OwnedDatabase(ctx, u.ID, ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoDatabase
	} else if err != nil {
		return nil, err
	}
	v.DB = d
	db := s.cfg.Data.Database(d.StoreName)
	if v.Collections, err = db.ListCollectionNames(ctx, bson.M{}); err != nil {
		return nil, err
	}
	v.Coll = q.Get("coll")
	if v.Coll == "" {
		return v, nil
	}
	v.Skip, _ = strconv.ParseInt(q.Get("skip"), 10, 64)
	if v.Skip < 0 {
		v.Skip = 0
	}
	c := db.Collection(v.Coll)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	if v.Total, err = c.CountDocuments(ctx, bson.M{}); err != nil {
		return nil, err
	}
	cur, err := c.Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetSkip(v.Skip).SetLimit(viewerPage))
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		v.Docs = append(v.Docs, toJSON(cur.Current))
	}
	v.Next, v.HasNext = v.Skip+viewerPage, v.Skip+viewerPage < v.Total
	v.Prev, v.HasPrev = max(0, v.Skip-viewerPage), v.Skip > 0
	return v, cur.Err()
}

var viewerTmpl = template.Must(template.New("viewer").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.User}}'s databases</title>
<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:.5em;overflow:auto}a{margin-right:1em}</style></head>
<body><h1>{{.User}}'s databases <small>(read-only)</small></h1>
<p>{{range .Databases}}<a href="?db={{.Name}}">{{.Name}}</a>{{end}}</p>
{{with .DB}}<h2>{{.Name}} <small>({{.StoreName}})</small></h2>{{end}}
{{if .DB}}<p>{{$db := .DB.Name}}{{range .Collections}}<a href="?db={{$db}}&amp;coll={{.}}">{{.}}</a>{{else}}no collections{{end}}</p>{{end}}
{{if .Coll}}<h3>{{.Coll}}: {{.Total}} documents</h3>
{{range .Docs}}<pre>{{.}}</pre>{{end}}
<p>{{if .HasPrev}}<a href="?db={{.DB.Name}}&amp;coll={{.Coll}}&amp;skip={{.Prev}}">previous</a>{{end}}
{{if .HasNext}}<a href="?db={{.DB.Name}}&amp;coll={{.Coll}}&amp;skip={{.Next}}">next</a>{{end}}</p>{{end}}
</body></html>
`))
