package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB itself uses, so both share SQLite's file locks
)

// FerretDB 1.24's SQLite backend indexes each collection's _id as
// `_ferretdb_sjson->"_id"`, but looks a document up by _id (find, update,
// delete) with `WHERE _ferretdb_sjson->'$._id' = ?`, an expression SQLite
// does not match to that index: every lookup by _id scans the whole
// table, 2-3 ms at 4,000 documents and growing with the collection.
// indexIDs gives every collection's table an index on the expression the
// lookups use (22 us for the same lookup).

const (
	// idIndexPrefix starts the names of the indexes indexIDs adds. No index
	// of FerretDB's starts so: it names them TABLE_NAME, and its table names
	// are letters, digits and underscores.
	idIndexPrefix = "gofastapi:id:"
	// idColumn is the expression FerretDB's lookups by _id compare
	// (metadata.IDColumn in FerretDB's SQLite backend).
	idColumn = `_ferretdb_sjson->'$._id'`
	// indexEvery is how often the store's files are looked at for new
	// collections; a file unchanged since its last look is skipped.
	indexEvery = 2 * time.Second
)

// idIndexer adds the _id lookup index to the collections of the FerretDB
// databases in dir (one SQLite file each) as they appear.
type idIndexer struct {
	dir string
	log *slog.Logger
	// seen is each file's newest change (its own or its WAL's) when it was
	// last indexed.
	seen map[string]time.Time
}

// run sweeps dir every indexEvery until ctx ends.
func (x *idIndexer) run(ctx context.Context) {
	t := time.NewTicker(indexEvery)
	defer t.Stop()
	for {
		x.sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep indexes every database file changed since its last sweep. A file
// that fails is logged and tried again at the next sweep: its lookups
// are only slower meanwhile.
func (x *idIndexer) sweep(ctx context.Context) {
	files, _ := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	for _, f := range files {
		changed := lastChange(f)
		if changed.IsZero() || changed.Equal(x.seen[f]) {
			continue
		}
		if _, err := indexIDs(ctx, f); err != nil {
			if ctx.Err() == nil {
				x.log.Warn("index _id lookups", "file", filepath.Base(f), "err", err)
			}
			continue
		}
		// Adding indexes changed the file: the next sweep looks again,
		// finds nothing to add, and remembers that.
		x.seen[f] = changed
	}
}

// lastChange is the newest modification time of the database file and its
// write-ahead log, or zero if the file is gone.
func lastChange(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	t := fi.ModTime()
	if wal, err := os.Stat(path + "-wal"); err == nil && wal.ModTime().After(t) {
		t = wal.ModTime()
	}
	return t
}

// indexIDs adds the _id lookup index to every collection table of the
// FerretDB database file at path that lacks it, and reports how many it
// added. A file without FerretDB's collection list is left alone.
func indexIDs(ctx context.Context, path string) (int, error) {
	// FerretDB's own connections wait up to 10 s for a lock, as this one
	// does: building an index briefly holds the file's write lock. mode=rw
	// never creates the file: a database dropped since the sweep listed it
	// must not come back empty.
	db, err := sql.Open("sqlite", "file:"+path+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	tables, err := strings1(ctx, db, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		if _, serr := os.Stat(path); noSuchTable(err) || os.IsNotExist(serr) {
			return 0, nil
		}
		return 0, err
	}
	names, err := strings1(ctx, db, `SELECT name FROM sqlite_master WHERE type = 'index'`)
	if err != nil {
		return 0, err
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	added := 0
	for _, table := range tables {
		name := idIndexPrefix + table
		if have[name] {
			continue
		}
		// A collection dropped since the list was read is no error.
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (%s)`, name, table, idColumn)
		if _, err := db.ExecContext(ctx, q); err != nil && !noSuchTable(err) {
			return added, fmt.Errorf("%s: %w", table, err)
		}
		added++
	}
	return added, nil
}

// noSuchTable reports whether err is SQLite's for a table that is not
// there (the driver has no error value for it).
func noSuchTable(err error) bool { return strings.Contains(err.Error(), "no such table") }

// strings1 returns the first column of every row of query.
func strings1(ctx context.Context, db *sql.DB, query string) ([]string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
