package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/controlplane/embedded/embeddedtest"
	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

func TestMetricWindowsAddUpPerMinute(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	minute := time.Now().UTC().Truncate(time.Minute)
	w := func(m time.Time, req, s2, s4, s5 int64, buckets map[int32]int64) *v1.MetricsWindow {
		return &v1.MetricsWindow{AppId: "a", Minute: timestamppb.New(m), Requests: req, Status_2Xx: s2, Status_4Xx: s4,
			Status_5Xx: s5, LatencySumMicros: 100 * req, LatencyBuckets: buckets}
	}
	// Two flushes in one minute add up; one in the minute before stays apart.
	for _, batch := range [][]*v1.MetricsWindow{
		{w(minute.Add(-time.Minute), 1, 1, 0, 0, map[int32]int64{3: 1})},
		{w(minute, 5, 3, 1, 1, map[int32]int64{40: 4, 60: 1})},
		{w(minute.Add(10*time.Second), 2, 0, 0, 2, map[int32]int64{60: 2})},
		{{AppId: "b", Minute: timestamppb.New(minute), Requests: 9, Status_2Xx: 9}},
	} {
		if err := s.WriteWindows(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.MetricWindows(ctx, "a", minute.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []*v1.MetricsWindow{
		w(minute.Add(-time.Minute), 1, 1, 0, 0, map[int32]int64{3: 1}),
		w(minute, 7, 3, 1, 3, map[int32]int64{40: 4, 60: 3}),
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("windows of a (-want +got):\n%s", diff)
	}
}

// TestObservationsExpire checks the 24 h expiry: a TTL index on each
// observation collection where the database has TTL indexes (MongoDB),
// else an index on the same field and the store's own sweep (FerretDB,
// the embedded default, answers TTL indexes "not implemented").
func TestObservationsExpire(t *testing.T) {
	s, db := openDB(t)
	ctx := context.Background()
	for coll, field := range map[string]string{"app_metrics": "minute", "app_errors": "time", "app_health": "updated_at"} {
		cur, err := db.Collection(coll).Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var specs []bson.M
		if err := cur.All(ctx, &specs); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ix := range specs {
			keys, _ := ix["key"].(bson.D)
			if len(keys) != 1 || keys[0].Key != field {
				continue
			}
			found = true
			ttl, hasTTL := ix["expireAfterSeconds"]
			if s.NativeTTL() && (!hasTTL || toInt(ttl) != 86400) {
				t.Errorf("%s: index on %s has expireAfterSeconds %v, want 86400", coll, field, ttl)
			}
		}
		if !found {
			t.Errorf("%s: no index on %s among %v", coll, field, specs)
		}
	}
	t.Logf("database expires documents itself (TTL index): %v", s.NativeTTL())

	now := time.Now()
	old, fresh := now.Add(-25*time.Hour), now.Add(-23*time.Hour)
	for _, at := range []time.Time{old, fresh} {
		if err := s.WriteWindows(ctx, []*v1.MetricsWindow{{AppId: "a", Minute: timestamppb.New(at), Requests: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteErrors(ctx, []*v1.RequestError{{AppId: "a", Time: timestamppb.New(at), Status: 500}}); err != nil {
			t.Fatal(err)
		}
	}
	// Writing metrics may already have swept; a sweep now leaves nothing
	// older than 24 h either way.
	if _, err := s.SweepObservations(ctx, now); err != nil {
		t.Fatal(err)
	}
	ws, err := s.MetricWindows(ctx, "a", time.Time{})
	if err != nil || len(ws) != 1 || !ws[0].GetMinute().AsTime().Equal(fresh.UTC().Truncate(time.Minute)) {
		t.Errorf("windows left: %v, %v; want the 23 h old one", ws, err)
	}
	if n, err := s.CountServerErrors(ctx, "a", time.Time{}); err != nil || n != 1 {
		t.Errorf("errors left: %d, %v; want 1", n, err)
	}
}

func TestRequestErrorsNewestFirst(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute)
	var es []*v1.RequestError
	for i, st := range []int32{404, 500, 422} {
		es = append(es, &v1.RequestError{AppId: "a", Time: timestamppb.New(t0.Add(time.Duration(i) * time.Second)),
			Method: "GET", Path: "/x", Status: st, RequestId: string(rune('a' + i))})
	}
	if err := s.WriteErrors(ctx, es); err != nil {
		t.Fatal(err)
	}
	got, err := s.RequestErrors(ctx, "a", 2)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.GetRequestId()+":"+e.GetClass().String())
	}
	if diff := cmp.Diff([]string{"c:ERROR_CLASS_CLIENT", "b:ERROR_CLASS_SERVER"}, ids); diff != "" {
		t.Errorf("latest 2 errors (-want +got):\n%s", diff)
	}
	if n, err := s.CountServerErrors(ctx, "a", t0); err != nil || n != 1 {
		t.Errorf("CountServerErrors = %d, %v; want 1", n, err)
	}
	h := &v1.HealthReport{AppId: "a", RunnerUp: true, RunnerSince: timestamppb.New(t0), CrashReason: "exit status 1",
		Crashes: []*timestamppb.Timestamp{timestamppb.New(t0)}, UpdatedAt: timestamppb.New(t0.Add(time.Second)),
		Probe: &v1.HealthProbe{Time: timestamppb.New(t0), Defined: true, Status: 503}}
	if err := s.WriteHealth(ctx, []*v1.HealthReport{h}); err != nil {
		t.Fatal(err)
	}
	back, err := s.HealthReport(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	show := func(h *v1.HealthReport) string {
		ms := func(ts *timestamppb.Timestamp) int64 { return ts.AsTime().UnixMilli() }
		return fmt.Sprintf("%s up=%v since=%d crashes=%d@%d reason=%q updated=%d probe=%v/%d/%d", h.GetAppId(), h.GetRunnerUp(),
			ms(h.GetRunnerSince()), len(h.GetCrashes()), ms(h.GetCrashes()[0]), h.GetCrashReason(), ms(h.GetUpdatedAt()),
			h.GetProbe().GetDefined(), h.GetProbe().GetStatus(), ms(h.GetProbe().GetTime()))
	}
	if diff := cmp.Diff(show(h), show(back)); diff != "" {
		t.Errorf("health report round trip (-want +got):\n%s", diff)
	}
	if _, err := s.HealthReport(ctx, "nope"); err != store.ErrNotFound {
		t.Errorf("HealthReport of an app without one: %v, want ErrNotFound", err)
	}
}

// openDB is open, also returning the database for looking at it directly.
func openDB(t *testing.T) (*store.Store, *mongo.Database) {
	t.Helper()
	client := embeddedtest.Mongo(t)
	s, err := store.Open(context.Background(), client, "test")
	if err != nil {
		t.Fatal(err)
	}
	return s, client.Database("test")
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int32:
		return int64(n)
	case int64:
		return n
	case float64:
		return int64(n)
	}
	return -1
}
