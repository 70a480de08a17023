package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Ferret is an in-process FerretDB serving MongoDB's wire protocol.
type Ferret struct {
	uri     string
	cancel  context.CancelFunc
	done    chan struct{}
	indexed chan struct{} // closed when the idIndexer stopped
}

// StartFerret starts FerretDB with its SQLite files in dir/ferretdb and a
// Unix socket at dir/mongo.sock. Stop ends it.
func StartFerret(dir string, log *slog.Logger) (*Ferret, error) {
	data := filepath.Join(dir, "ferretdb")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "mongo.sock")
	os.Remove(sock)
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: sock},
		Handler:   "sqlite",
		SQLiteURL: "file:" + data + "/",
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("start ferretdb: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fe := &Ferret{cancel: cancel, done: make(chan struct{}), indexed: make(chan struct{})}
	go func() {
		defer close(fe.done)
		f.Run(ctx)
	}()
	// Lookups by _id need an index FerretDB does not make (see indexIDs).
	x := &idIndexer{dir: data, log: log, seen: map[string]time.Time{}}
	go func() {
		defer close(fe.indexed)
		x.run(ctx)
	}()
	fe.uri = f.MongoDBURI()
	return fe, nil
}

// URI is the MongoDB connection string of the running instance.
func (f *Ferret) URI() string { return f.uri }

// Stop ends FerretDB and waits until its files are closed.
func (f *Ferret) Stop() {
	f.cancel()
	<-f.indexed
	<-f.done
}
