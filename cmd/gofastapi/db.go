package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

const dbUsage = `gofastapi db: your platform databases (apps get PLATFORM_MONGO_URI).

  gofastapi db list                              your databases, quota and what uses them
  gofastapi db create NAME                       create a database
  gofastapi db show DB                           describe a database
  gofastapi db rename DB NEW                     rename a database (apps are not disturbed)
  gofastapi db default DB                        make DB the default of apps that chose none
  gofastapi db delete DB                         delete a database and its data
  gofastapi db use APP [DB]                      choose APP's database (none: the default)
  gofastapi db stats DB                          collections, documents, sizes, quota used
  gofastapi db collections DB                    list a database's collections
  gofastapi db find [--filter JSON] [--sort JSON] [--skip N] [--limit N] DB COLLECTION
  gofastapi db get DB COLLECTION ID              one document by _id (JSON: '"abc"', 3, '{"$oid":"..."}')
  gofastapi db insert DB COLLECTION JSON         insert a document
  gofastapi db update DB COLLECTION ID JSON      replace a document
  gofastapi db remove DB COLLECTION ID           delete a document
  gofastapi db rotate                            new database password; your apps restart
  gofastapi db viewer-credentials                new credentials for your read-only data viewer
`

// cmdDB dispatches `gofastapi db SUBCOMMAND`.
func cmdDB(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dbUsage)
		return errUsage
	}
	sub, rest := args[0], args[1:]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(stdout, dbUsage)
		return nil
	}
	fs := newFlags("db " + sub)
	mk := clientFlags(fs)
	var find v1.FindDocumentsRequest
	if sub == "find" {
		fs.StringVar(&find.Filter, "filter", "", "query as JSON, e.g. '{\"age\": {\"$gt\": 3}}'")
		fs.StringVar(&find.Sort, "sort", "", "sort as JSON, e.g. '{\"age\": -1}' (default by _id)")
		fs.Int64Var(&find.Skip, "skip", 0, "documents to skip")
		fs.Int64Var(&find.Limit, "limit", 20, "most documents to show (1-1000)")
	}
	if err := parseInterspersed(fs, rest); err != nil {
		return errUsage
	}
	c := mk()
	db := gofastapiv1connect.NewDatabaseServiceClient(&http.Client{Timeout: time.Minute}, c.server, connect.WithInterceptors(bearer(c.token)))
	a := fs.Args()
	need := func(n int, form string) error {
		if len(a) != n {
			return fmt.Errorf("usage: gofastapi db %s %s", sub, form)
		}
		return nil
	}
	switch sub {
	case "list":
		return dbList(ctx, db, stdout)
	case "create":
		if err := need(1, "NAME"); err != nil {
			return err
		}
		res, err := db.CreateDatabase(ctx, connect.NewRequest(&v1.CreateDatabaseRequest{Name: a[0]}))
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "created database %s (apps see it as %s)\n", res.Msg.GetDatabase().GetName(), res.Msg.GetDatabase().GetStoreName())
		return nil
	case "show":
		if err := need(1, "DB"); err != nil {
			return err
		}
		res, err := db.GetDatabase(ctx, connect.NewRequest(&v1.GetDatabaseRequest{Database: a[0]}))
		if err != nil {
			return explain(err)
		}
		d := res.Msg.GetDatabase()
		fmt.Fprintf(stdout, "name:       %s\nid:         %s\nstore name: %s\ndefault:    %v\nsize:       %s\napps:       %s\ncreated:    %s\n",
			d.GetName(), d.GetId(), d.GetStoreName(), d.GetDefault(), sizeText(d.GetSizeBytes()), strings.Join(d.GetApps(), ", "),
			d.GetCreatedAt().AsTime().Local().Format("2006-01-02 15:04"))
		return nil
	case "rename":
		if err := need(2, "DB NEW"); err != nil {
			return err
		}
		if _, err := db.RenameDatabase(ctx, connect.NewRequest(&v1.RenameDatabaseRequest{Database: a[0], NewName: a[1]})); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "renamed %s to %s\n", a[0], a[1])
		return nil
	case "default":
		if err := need(1, "DB"); err != nil {
			return err
		}
		if _, err := db.SetDefaultDatabase(ctx, connect.NewRequest(&v1.SetDefaultDatabaseRequest{Database: a[0]})); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "%s is your default database\n", a[0])
		return nil
	case "delete":
		if err := need(1, "DB"); err != nil {
			return err
		}
		if _, err := db.DeleteDatabase(ctx, connect.NewRequest(&v1.DeleteDatabaseRequest{Database: a[0]})); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "deleted database %s and its data\n", a[0])
		return nil
	case "use":
		if len(a) != 1 && len(a) != 2 {
			return fmt.Errorf("usage: gofastapi db use APP [DB]")
		}
		req := &v1.SetAppDatabaseRequest{App: a[0]}
		if len(a) == 2 {
			req.Database = a[1]
		}
		if _, err := db.SetAppDatabase(ctx, connect.NewRequest(req)); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "%s uses database %s from its next request\n", a[0], firstNonEmpty(req.Database, "(default)"))
		return nil
	case "stats":
		if err := need(1, "DB"); err != nil {
			return err
		}
		return dbStats(ctx, db, a[0], stdout)
	case "collections":
		if err := need(1, "DB"); err != nil {
			return err
		}
		res, err := db.ListCollections(ctx, connect.NewRequest(&v1.ListCollectionsRequest{Database: a[0]}))
		if err != nil {
			return explain(err)
		}
		for _, n := range res.Msg.GetCollections() {
			fmt.Fprintln(stdout, n)
		}
		return nil
	case "find":
		if err := need(2, "[flags] DB COLLECTION"); err != nil {
			return err
		}
		find.Database, find.Collection = a[0], a[1]
		res, err := db.FindDocuments(ctx, connect.NewRequest(&find))
		if err != nil {
			return explain(err)
		}
		for _, d := range res.Msg.GetDocuments() {
			fmt.Fprintln(stdout, d)
		}
		fmt.Fprintf(stdout, "(%d of %d matching documents from %d)\n", len(res.Msg.GetDocuments()), res.Msg.GetTotal(), find.Skip)
		return nil
	case "get":
		if err := need(3, "DB COLLECTION ID"); err != nil {
			return err
		}
		res, err := db.GetDocument(ctx, connect.NewRequest(&v1.GetDocumentRequest{Database: a[0], Collection: a[1], Id: a[2]}))
		if err != nil {
			return explain(err)
		}
		fmt.Fprintln(stdout, res.Msg.GetDocument())
		return nil
	case "insert":
		if err := need(3, "DB COLLECTION JSON"); err != nil {
			return err
		}
		res, err := db.InsertDocument(ctx, connect.NewRequest(&v1.InsertDocumentRequest{Database: a[0], Collection: a[1], Document: a[2]}))
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "inserted %s\n", res.Msg.GetId())
		return nil
	case "update":
		if err := need(4, "DB COLLECTION ID JSON"); err != nil {
			return err
		}
		if _, err := db.UpdateDocument(ctx, connect.NewRequest(&v1.UpdateDocumentRequest{Database: a[0], Collection: a[1], Id: a[2], Document: a[3]})); err != nil {
			return explain(err)
		}
		fmt.Fprintln(stdout, "updated")
		return nil
	case "remove":
		if err := need(3, "DB COLLECTION ID"); err != nil {
			return err
		}
		if _, err := db.DeleteDocument(ctx, connect.NewRequest(&v1.DeleteDocumentRequest{Database: a[0], Collection: a[1], Id: a[2]})); err != nil {
			return explain(err)
		}
		fmt.Fprintln(stdout, "deleted")
		return nil
	case "rotate":
		res, err := db.RotateCredentials(ctx, connect.NewRequest(&v1.RotateCredentialsRequest{}))
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "new database password set; old connections closed; %d app(s) restart on their next request\n", res.Msg.GetRestartedApps())
		return nil
	case "viewer-credentials":
		res, err := db.RotateViewerCredentials(ctx, connect.NewRequest(&v1.RotateViewerCredentialsRequest{}))
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "data viewer: %s\nusername:    %s\npassword:    %s\n(shown once; the previous credentials no longer work)\n",
			res.Msg.GetUrl(), res.Msg.GetUsername(), res.Msg.GetPassword())
		return nil
	}
	fmt.Fprintf(stderr, "unknown db command %q\n\n%s", sub, dbUsage)
	return errUsage
}

func dbList(ctx context.Context, db gofastapiv1connect.DatabaseServiceClient, stdout io.Writer) error {
	res, err := db.ListDatabases(ctx, connect.NewRequest(&v1.ListDatabasesRequest{}))
	if err != nil {
		return explain(err)
	}
	m := res.Msg
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDEFAULT\tSTORE NAME\tSIZE\tAPPS")
	for _, d := range m.GetDatabases() {
		def := ""
		if d.GetDefault() {
			def = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.GetName(), def, d.GetStoreName(), sizeText(d.GetSizeBytes()), strings.Join(d.GetApps(), ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	quota, max := "no quota", "no limit"
	if m.GetQuotaBytes() > 0 {
		quota = sizeText(m.GetQuotaBytes())
	}
	if m.GetMaxDatabases() > 0 {
		max = fmt.Sprint(m.GetMaxDatabases())
	}
	fmt.Fprintf(stdout, "\nuser %s: %s used of %s; %d of %s databases\n", m.GetUsername(), sizeText(m.GetUsedBytes()), quota, len(m.GetDatabases()), max)
	return nil
}

func dbStats(ctx context.Context, db gofastapiv1connect.DatabaseServiceClient, name string, stdout io.Writer) error {
	res, err := db.GetDatabaseStats(ctx, connect.NewRequest(&v1.GetDatabaseStatsRequest{Database: name}))
	if err != nil {
		return explain(err)
	}
	m := res.Msg
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "COLLECTION\tDOCUMENTS\tSIZE\tAVG DOC\t")
	for _, c := range m.GetCollections() {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t\n", c.GetName(), c.GetDocuments(), sizeText(c.GetSizeBytes()), sizeText(c.GetAvgDocumentBytes()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	quota := "no quota"
	if m.GetQuotaBytes() > 0 {
		quota = sizeText(m.GetQuotaBytes())
	}
	fmt.Fprintf(stdout, "\ntotal %s; all your databases: %s of %s\n", sizeText(m.GetTotalBytes()), sizeText(m.GetQuotaUsedBytes()), quota)
	return nil
}
