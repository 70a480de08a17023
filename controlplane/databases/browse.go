package databases

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// Stats is one database's collections with their figures.
type Stats struct {
	Collections []*v1.CollectionStats
	TotalBytes  int64
}

// stats measures database d.
func (s *Service) stats(ctx context.Context, d *store.Database) (*Stats, error) {
	db := s.cfg.Data.Database(d.StoreName)
	names, err := db.ListCollectionNames(ctx, bson.M{})
	if err != nil {
		return nil, err
	}
	st := &Stats{}
	for _, n := range names {
		cs := &v1.CollectionStats{Name: n}
		if cs.Documents, err = db.Collection(n).CountDocuments(ctx, bson.M{}); err != nil {
			return nil, err
		}
		raw, err := db.RunCommand(ctx, bson.D{{Key: "collStats", Value: n}, {Key: "scale", Value: 1}}).Raw()
		if err != nil {
			return nil, err
		}
		if v, err := raw.LookupErr("size"); err == nil {
			f, _ := v.AsFloat64OK()
			cs.SizeBytes = int64(f)
		}
		if cs.Documents > 0 {
			cs.AvgDocumentBytes = cs.SizeBytes / cs.Documents
		}
		st.Collections = append(st.Collections, cs)
	}
	st.TotalBytes, err = s.cfg.Sizer.Size(ctx, []string{d.StoreName})
	return st, err
}

// UserStorage returns how many platform databases the users have and the
// bytes they take together, for the admin's figures. It implements
// admin.UserStorage.
func (s *Service) UserStorage(ctx context.Context) (databases, bytes int64, err error) {
	names, err := s.cfg.Store.DatabaseStoreNames(ctx)
	if err != nil || len(names) == 0 {
		return 0, 0, err
	}
	bytes, err = s.cfg.Sizer.Size(ctx, names)
	return int64(len(names)), bytes, err
}

// GetDatabaseStats implements DatabaseService.GetDatabaseStats.
func (s *Service) GetDatabaseStats(ctx context.Context, req *connect.Request[v1.GetDatabaseStatsRequest]) (*connect.Response[v1.GetDatabaseStatsResponse], error) {
	u, d, err := s.owned(ctx, req.Msg.GetDatabase())
	if err != nil {
		return nil, s.fail("database stats", err)
	}
	st, err := s.stats(ctx, d)
	if err != nil {
		return nil, s.fail("database stats", err)
	}
	used, err := s.used(ctx, u)
	if err != nil {
		return nil, s.fail("database stats", err)
	}
	return connect.NewResponse(&v1.GetDatabaseStatsResponse{
		Database: s.toProto(ctx, d, nil), Collections: st.Collections, TotalBytes: st.TotalBytes,
		QuotaUsedBytes: used, QuotaBytes: u.EffectiveLimits().StorageBytes,
	}), nil
}

// used returns the storage all of u's databases take.
func (s *Service) used(ctx context.Context, u *store.User) (int64, error) {
	dbs, err := s.cfg.Store.ListDatabases(ctx, u.ID)
	if err != nil {
		return 0, err
	}
	names := make([]string, len(dbs))
	for i, d := range dbs {
		names[i] = d.StoreName
	}
	return s.cfg.Sizer.Size(ctx, names)
}

// checkQuota refuses a browser write of size bytes past u's quota, as the
// front does for apps.
func (s *Service) checkQuota(ctx context.Context, u *store.User, size int) error {
	quota := u.EffectiveLimits().StorageBytes
	if quota <= 0 {
		return nil
	}
	used, err := s.used(ctx, u)
	if err != nil {
		return err
	}
	if used+int64(size) > quota {
		return &limitError{msg: fmt.Sprintf("storage quota exceeded: your databases use %d of your %d bytes; delete data to free space, or ask an admin for a larger quota", used, quota)}
	}
	return nil
}

// ListCollections implements DatabaseService.ListCollections.
func (s *Service) ListCollections(ctx context.Context, req *connect.Request[v1.ListCollectionsRequest]) (*connect.Response[v1.ListCollectionsResponse], error) {
	_, d, err := s.owned(ctx, req.Msg.GetDatabase())
	if err != nil {
		return nil, s.fail("list collections", err)
	}
	names, err := s.cfg.Data.Database(d.StoreName).ListCollectionNames(ctx, bson.M{})
	if err != nil {
		return nil, s.fail("list collections", err)
	}
	return connect.NewResponse(&v1.ListCollectionsResponse{Collections: names}), nil
}

// collection returns the caller's collection named in a request. Queries
// on it should use s.bounded.
func (s *Service) collection(ctx context.Context, dbRef, coll string) (*store.User, *mongo.Collection, error) {
	u, d, err := s.owned(ctx, dbRef)
	if err != nil {
		return nil, nil, err
	}
	if coll == "" || len(coll) > 200 {
		return nil, nil, invalid("name a collection")
	}
	return u, s.cfg.Data.Database(d.StoreName).Collection(coll), nil
}

// parseJSON parses Extended JSON (relaxed or canonical) into a document;
// empty is an empty document.
func parseJSON(field, s string) (bson.D, error) {
	if s == "" {
		return bson.D{}, nil
	}
	var d bson.D
	if err := bson.UnmarshalExtJSON([]byte(s), false, &d); err != nil {
		return nil, invalid("%s is not a JSON object: %v", field, err)
	}
	return d, nil
}

// parseID parses an _id given as Extended JSON: "abc", 3, {"$oid": ...}.
func parseID(s string) (any, error) {
	if s == "" {
		return nil, invalid("give the document's _id as JSON, e.g. \"abc\", 3 or {\"$oid\": \"...\"}")
	}
	var wrap struct {
		ID bson.RawValue `bson:"id"`
	}
	if err := bson.UnmarshalExtJSON([]byte(`{"id":`+s+`}`), false, &wrap); err != nil {
		return nil, invalid("id is not JSON: %v", err)
	}
	return wrap.ID, nil
}

func toJSON(doc bson.Raw) string {
	b, err := bson.MarshalExtJSON(doc, false, false)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// maxPage bounds FindDocuments' page size.
const maxPage = 1000

// FindDocuments implements DatabaseService.FindDocuments.
func (s *Service) FindDocuments(ctx context.Context, req *connect.Request[v1.FindDocumentsRequest]) (*connect.Response[v1.FindDocumentsResponse], error) {
	_, c, err := s.collection(ctx, req.Msg.GetDatabase(), req.Msg.GetCollection())
	if err != nil {
		return nil, s.fail("find documents", err)
	}
	filter, err := parseJSON("filter", req.Msg.GetFilter())
	if err != nil {
		return nil, s.fail("find documents", err)
	}
	sort, err := parseJSON("sort", req.Msg.GetSort())
	if err != nil {
		return nil, s.fail("find documents", err)
	}
	if len(sort) == 0 {
		sort = bson.D{{Key: "_id", Value: 1}}
	}
	limit := req.Msg.GetLimit()
	switch {
	case limit == 0:
		limit = 50
	case limit < 0 || limit > maxPage:
		return nil, s.fail("find documents", invalid("limit must be between 1 and %d", maxPage))
	}
	if req.Msg.GetSkip() < 0 {
		return nil, s.fail("find documents", invalid("skip must not be negative"))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	total, err := c.CountDocuments(ctx, filter)
	if err != nil {
		return nil, s.fail("find documents", queryError(err))
	}
	cur, err := c.Find(ctx, filter, options.Find().SetSort(sort).SetSkip(req.Msg.GetSkip()).SetLimit(limit))
	if err != nil {
		return nil, s.fail("find documents", queryError(err))
	}
	defer cur.Close(ctx)
	res := &v1.FindDocumentsResponse{Total: total}
	for cur.Next(ctx) {
		res.Documents = append(res.Documents, toJSON(cur.Current))
	}
	if err := cur.Err(); err != nil {
		return nil, s.fail("find documents", queryError(err))
	}
	return connect.NewResponse(res), nil
}

// queryError turns the store's refusal of a bad filter or sort into a
// message the caller can act on; other errors stay internal.
func queryError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || mongo.IsTimeout(err) {
		return &limitError{msg: "the query exceeded the platform database's time limit: narrow the filter"}
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) && ce.Code != 0 {
		return invalid("the store refused the query: %s", ce.Message)
	}
	return err
}

// GetDocument implements DatabaseService.GetDocument.
func (s *Service) GetDocument(ctx context.Context, req *connect.Request[v1.GetDocumentRequest]) (*connect.Response[v1.GetDocumentResponse], error) {
	_, c, err := s.collection(ctx, req.Msg.GetDatabase(), req.Msg.GetCollection())
	if err != nil {
		return nil, s.fail("get document", err)
	}
	id, err := parseID(req.Msg.GetId())
	if err != nil {
		return nil, s.fail("get document", err)
	}
	raw, err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, s.fail("get document", errNoDocument)
	} else if err != nil {
		return nil, s.fail("get document", err)
	}
	return connect.NewResponse(&v1.GetDocumentResponse{Document: toJSON(raw)}), nil
}

// InsertDocument implements DatabaseService.InsertDocument.
func (s *Service) InsertDocument(ctx context.Context, req *connect.Request[v1.InsertDocumentRequest]) (*connect.Response[v1.InsertDocumentResponse], error) {
	u, c, err := s.collection(ctx, req.Msg.GetDatabase(), req.Msg.GetCollection())
	if err != nil {
		return nil, s.fail("insert document", err)
	}
	doc, err := parseJSON("document", req.Msg.GetDocument())
	if err != nil {
		return nil, s.fail("insert document", err)
	}
	if err := s.checkQuota(ctx, u, len(req.Msg.GetDocument())); err != nil {
		return nil, s.fail("insert document", err)
	}
	res, err := c.InsertOne(ctx, doc)
	if mongo.IsDuplicateKeyError(err) {
		return nil, s.fail("insert document", invalid("a document with this _id exists"))
	} else if err != nil {
		return nil, s.fail("insert document", err)
	}
	return connect.NewResponse(&v1.InsertDocumentResponse{Id: valueJSON(res.InsertedID)}), nil
}

// valueJSON returns one value as relaxed Extended JSON.
func valueJSON(v any) string {
	b, err := bson.MarshalExtJSON(bson.D{{Key: "v", Value: v}}, false, false)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(string(b), `{"v":`), "}")
}

// UpdateDocument implements DatabaseService.UpdateDocument.
func (s *Service) UpdateDocument(ctx context.Context, req *connect.Request[v1.UpdateDocumentRequest]) (*connect.Response[v1.UpdateDocumentResponse], error) {
	u, c, err := s.collection(ctx, req.Msg.GetDatabase(), req.Msg.GetCollection())
	if err != nil {
		return nil, s.fail("update document", err)
	}
	id, err := parseID(req.Msg.GetId())
	if err != nil {
		return nil, s.fail("update document", err)
	}
	doc, err := parseJSON("document", req.Msg.GetDocument())
	if err != nil {
		return nil, s.fail("update document", err)
	}
	for i, e := range doc {
		if e.Key == "_id" {
			doc = append(doc[:i], doc[i+1:]...)
			break
		}
	}
	if err := s.checkQuota(ctx, u, len(req.Msg.GetDocument())); err != nil {
		return nil, s.fail("update document", err)
	}
	res, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, doc)
	if err != nil {
		return nil, s.fail("update document", queryError(err))
	}
	if res.MatchedCount == 0 {
		return nil, s.fail("update document", errNoDocument)
	}
	return connect.NewResponse(&v1.UpdateDocumentResponse{}), nil
}

// DeleteDocument implements DatabaseService.DeleteDocument.
func (s *Service) DeleteDocument(ctx context.Context, req *connect.Request[v1.DeleteDocumentRequest]) (*connect.Response[v1.DeleteDocumentResponse], error) {
	_, c, err := s.collection(ctx, req.Msg.GetDatabase(), req.Msg.GetCollection())
	if err != nil {
		return nil, s.fail("delete document", err)
	}
	id, err := parseID(req.Msg.GetId())
	if err != nil {
		return nil, s.fail("delete document", err)
	}
	res, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return nil, s.fail("delete document", err)
	}
	if res.DeletedCount == 0 {
		return nil, s.fail("delete document", errNoDocument)
	}
	return connect.NewResponse(&v1.DeleteDocumentResponse{}), nil
}
