package main

import (
	"context"
	"fmt"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// databaseRules are the authorization rules of DatabaseService for
// TestAuthorizationMatrix. Calls name the owner's database by id: every
// user has a database called "default" of their own.
func databaseRules(t *testing.T, m *matrix) map[protoreflect.FullName]access {
	ctx := context.Background()
	owner := m.p.dbClient(m.tokens[roleOwner])
	list, err := owner.ListDatabases(ctx, connect.NewRequest(&v1.ListDatabasesRequest{}))
	if err != nil || len(list.Msg.GetDatabases()) == 0 {
		t.Fatalf("owner's databases: %v %v", list, err)
	}
	id := list.Msg.GetDatabases()[0].GetId()
	db := static(fmt.Sprintf(`{"database":%q}`, id))
	coll := func(extra string) func(role) string {
		return static(fmt.Sprintf(`{"database":%q,"collection":"c"%s}`, id, extra))
	}
	putDoc := func(docID string) func(role) {
		return func(role) {
			owner.InsertDocument(ctx, connect.NewRequest(&v1.InsertDocumentRequest{Database: id, Collection: "c", Document: fmt.Sprintf(`{"_id":%q}`, docID)}))
		}
	}
	var doomed string
	return map[protoreflect.FullName]access{
		"gofastapi.v1.DatabaseService.ListDatabases": {want: signedIn, req: static(`{}`)},
		"gofastapi.v1.DatabaseService.CreateDatabase": {want: signedIn,
			req: func(r role) string { return fmt.Sprintf(`{"name":"made-by-%s"}`, r) }},
		"gofastapi.v1.DatabaseService.GetDatabase": {want: ownerOnly, req: db},
		"gofastapi.v1.DatabaseService.RenameDatabase": {want: ownerOnly,
			req: static(fmt.Sprintf(`{"database":%q,"newName":"renamed"}`, id))},
		"gofastapi.v1.DatabaseService.SetDefaultDatabase": {want: ownerOnly, req: db},
		"gofastapi.v1.DatabaseService.DeleteDatabase": {want: ownerOnly,
			before: func(r role) {
				res, err := owner.CreateDatabase(ctx, connect.NewRequest(&v1.CreateDatabaseRequest{Name: "doomed-" + r.String()}))
				if err != nil {
					t.Fatalf("create a database to delete: %v", err)
				}
				doomed = res.Msg.GetDatabase().GetId()
			},
			req: func(role) string { return fmt.Sprintf(`{"database":%q}`, doomed) }},
		"gofastapi.v1.DatabaseService.SetAppDatabase": {want: ownerOnly,
			req: static(fmt.Sprintf(`{"app":"owned","database":%q}`, id))},
		"gofastapi.v1.DatabaseService.RotateCredentials":       {want: signedIn, req: static(`{}`)},
		"gofastapi.v1.DatabaseService.RotateViewerCredentials": {want: signedIn, req: static(`{}`)},
		"gofastapi.v1.DatabaseService.GetDatabaseStats":        {want: ownerOnly, req: db},
		"gofastapi.v1.DatabaseService.ListCollections":         {want: ownerOnly, req: db},
		"gofastapi.v1.DatabaseService.FindDocuments":           {want: ownerOnly, req: coll(`,"filter":"{}"`)},
		"gofastapi.v1.DatabaseService.GetDocument":             {want: ownerOnly, before: putDoc("kept"), req: coll(`,"id":"\"kept\""`)},
		"gofastapi.v1.DatabaseService.InsertDocument":          {want: ownerOnly, req: coll(`,"document":"{}"`)},
		"gofastapi.v1.DatabaseService.UpdateDocument": {want: ownerOnly, before: putDoc("kept"),
			req: coll(`,"id":"\"kept\"","document":"{\"x\":1}"`)},
		"gofastapi.v1.DatabaseService.DeleteDocument": {want: ownerOnly, before: putDoc("doomed"),
			req: coll(`,"id":"\"doomed\""`)},
	}
}
