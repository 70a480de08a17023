package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// ObservationTTL is how long per-app metrics, errors and health reports
// are kept.
const ObservationTTL = 24 * time.Hour

// sweepEvery is how often expired observations are deleted by the
// platform itself when the database has no TTL indexes.
const sweepEvery = time.Minute

// codeNotImplemented is the server's error code for a feature it lacks.
// FerretDB, the embedded default's store, answers it to TTL indexes.
const codeNotImplemented = 238

// observations are the collections of per-app metrics (one document per
// app and minute), error answers and health reports, all expiring after
// ObservationTTL.
type observations struct {
	metrics, errors, health *mongo.Collection

	// nativeTTL says the database expires documents itself (a TTL index);
	// otherwise the store deletes expired ones while writing metrics.
	nativeTTL bool
	sweepMu   sync.Mutex
	lastSweep time.Time
}

// openObservations creates the observation collections' indexes: a TTL
// index on each one's time field where the database has TTL indexes, else
// a plain index on it, and expiry by the store.
func (s *Store) openObservations(ctx context.Context) error {
	s.obs = &observations{
		metrics: s.db.Collection("app_metrics"),
		errors:  s.db.Collection("app_errors"),
		health:  s.db.Collection("app_health"),
	}
	o := s.obs
	for _, ix := range []struct {
		c     *mongo.Collection
		field string
	}{{o.metrics, "minute"}, {o.errors, "time"}, {o.health, "updated_at"}} {
		ttl := mongo.IndexModel{Keys: bson.D{{Key: ix.field, Value: 1}},
			Options: options.Index().SetExpireAfterSeconds(int32(ObservationTTL / time.Second))}
		_, err := ix.c.Indexes().CreateOne(ctx, ttl)
		var ce mongo.CommandError
		if errors.As(err, &ce) && ce.Code == codeNotImplemented {
			_, err = ix.c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: ix.field, Value: 1}}})
		} else if err == nil {
			o.nativeTTL = true
		}
		if err != nil {
			return fmt.Errorf("create index on %s: %w", ix.c.Name(), err)
		}
	}
	for _, ix := range []struct {
		c    *mongo.Collection
		keys bson.D
	}{
		{o.metrics, bson.D{{Key: "app_id", Value: 1}, {Key: "minute", Value: 1}}},
		{o.errors, bson.D{{Key: "app_id", Value: 1}, {Key: "time", Value: -1}}},
	} {
		if _, err := ix.c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys}); err != nil {
			return fmt.Errorf("create index on %s: %w", ix.c.Name(), err)
		}
	}
	return nil
}

// NativeTTL reports whether the database expires observations itself
// through TTL indexes (MongoDB); if not (FerretDB), the store deletes
// them as it writes new metrics.
func (s *Store) NativeTTL() bool { return s.obs.nativeTTL }

// metricDoc is one app's requests in one minute.
type metricDoc struct {
	ID       string           `bson:"_id"`
	AppID    string           `bson:"app_id"`
	Minute   time.Time        `bson:"minute"`
	Requests int64            `bson:"requests"`
	S2xx     int64            `bson:"s2xx"`
	S4xx     int64            `bson:"s4xx"`
	S5xx     int64            `bson:"s5xx"`
	SumUS    int64            `bson:"sum_us"`
	Buckets  map[string]int64 `bson:"buckets"`
}

// WriteWindows adds each window's counts to its app's document for that
// minute.
func (s *Store) WriteWindows(ctx context.Context, ws []*v1.MetricsWindow) error {
	for _, w := range ws {
		minute := w.GetMinute().AsTime().UTC().Truncate(time.Minute)
		inc := bson.M{"requests": w.GetRequests(), "s2xx": w.GetStatus_2Xx(), "s4xx": w.GetStatus_4Xx(),
			"s5xx": w.GetStatus_5Xx(), "sum_us": w.GetLatencySumMicros()}
		for i, c := range w.GetLatencyBuckets() {
			inc["buckets."+strconv.Itoa(int(i))] = c
		}
		id := w.GetAppId() + "/" + strconv.FormatInt(minute.Unix(), 10)
		_, err := s.obs.metrics.UpdateOne(ctx, bson.M{"_id": id},
			bson.M{"$inc": inc, "$setOnInsert": bson.M{"app_id": w.GetAppId(), "minute": minute}},
			options.UpdateOne().SetUpsert(true))
		if err != nil {
			return classify(err)
		}
	}
	if err := s.sweep(ctx); err != nil {
		return fmt.Errorf("windows written, but deleting expired observations failed: %w", err)
	}
	return nil
}

// MetricWindows returns appID's per-minute metrics from since on, oldest
// first.
func (s *Store) MetricWindows(ctx context.Context, appID string, since time.Time) ([]*v1.MetricsWindow, error) {
	cur, err := s.obs.metrics.Find(ctx, bson.M{"app_id": appID, "minute": bson.M{"$gte": since}},
		options.Find().SetSort(bson.D{{Key: "minute", Value: 1}}))
	if err != nil {
		return nil, classify(err)
	}
	var docs []metricDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, classify(err)
	}
	out := make([]*v1.MetricsWindow, 0, len(docs))
	for _, d := range docs {
		w := &v1.MetricsWindow{AppId: d.AppID, Minute: timestamppb.New(d.Minute), Requests: d.Requests,
			Status_2Xx: d.S2xx, Status_4Xx: d.S4xx, Status_5Xx: d.S5xx, LatencySumMicros: d.SumUS,
			LatencyBuckets: make(map[int32]int64, len(d.Buckets))}
		for k, c := range d.Buckets {
			i, err := strconv.Atoi(k)
			if err != nil {
				return nil, fmt.Errorf("metrics of %s: bad bucket %q", appID, k)
			}
			w.LatencyBuckets[int32(i)] = c
		}
		out = append(out, w)
	}
	return out, nil
}

// errorDoc is one error answer.
type errorDoc struct {
	ID        string    `bson:"_id"`
	AppID     string    `bson:"app_id"`
	Time      time.Time `bson:"time"`
	Method    string    `bson:"method"`
	Path      string    `bson:"path"`
	Status    int32     `bson:"status"`
	RequestID string    `bson:"request_id"`
}

// WriteErrors stores error answers.
func (s *Store) WriteErrors(ctx context.Context, es []*v1.RequestError) error {
	docs := make([]any, len(es))
	for i, e := range es {
		t := e.GetTime().AsTime()
		// The id starts with the time, so errors of one millisecond still
		// list in the order they happened.
		docs[i] = errorDoc{ID: fmt.Sprintf("%016x", t.UnixNano()) + NewID()[:8], AppID: e.GetAppId(),
			Time: t.UTC().Truncate(time.Millisecond), Method: e.GetMethod(), Path: e.GetPath(), Status: e.GetStatus(),
			RequestID: e.GetRequestId()}
	}
	_, err := s.obs.errors.InsertMany(ctx, docs)
	return classify(err)
}

// RequestErrors returns appID's latest n error answers, newest first.
func (s *Store) RequestErrors(ctx context.Context, appID string, n int64) ([]*v1.RequestError, error) {
	since := time.Now().Add(-ObservationTTL)
	cur, err := s.obs.errors.Find(ctx, bson.M{"app_id": appID, "time": bson.M{"$gte": since}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(n))
	if err != nil {
		return nil, classify(err)
	}
	var docs []errorDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, classify(err)
	}
	out := make([]*v1.RequestError, len(docs))
	for i, d := range docs {
		class := v1.ErrorClass_ERROR_CLASS_CLIENT
		if d.Status >= 500 {
			class = v1.ErrorClass_ERROR_CLASS_SERVER
		}
		out[i] = &v1.RequestError{Time: timestamppb.New(d.Time), Method: d.Method, Path: d.Path, Status: d.Status,
			Class: class, RequestId: d.RequestID}
	}
	return out, nil
}

// CountServerErrors counts appID's 5xx answers from since on.
func (s *Store) CountServerErrors(ctx context.Context, appID string, since time.Time) (int64, error) {
	n, err := s.obs.errors.CountDocuments(ctx, bson.M{"app_id": appID, "time": bson.M{"$gte": since}, "status": bson.M{"$gte": 500}})
	return n, classify(err)
}

// healthDoc is the latest health report of an app.
type healthDoc struct {
	AppID       string      `bson:"_id"`
	RunnerUp    bool        `bson:"runner_up"`
	RunnerSince time.Time   `bson:"runner_since"`
	Probe       *probeDoc   `bson:"probe,omitempty"`
	Crashes     []time.Time `bson:"crashes"`
	CrashReason string      `bson:"crash_reason"`
	UpdatedAt   time.Time   `bson:"updated_at"`
}

type probeDoc struct {
	Time    time.Time `bson:"time"`
	Defined bool      `bson:"defined"`
	Status  int32     `bson:"status"`
	Error   string    `bson:"error"`
}

// WriteHealth replaces each app's health report.
func (s *Store) WriteHealth(ctx context.Context, hs []*v1.HealthReport) error {
	for _, h := range hs {
		d := healthDoc{AppID: h.GetAppId(), RunnerUp: h.GetRunnerUp(), RunnerSince: h.GetRunnerSince().AsTime(),
			CrashReason: h.GetCrashReason(), UpdatedAt: h.GetUpdatedAt().AsTime(), Crashes: []time.Time{}}
		for _, c := range h.GetCrashes() {
			d.Crashes = append(d.Crashes, c.AsTime())
		}
		if p := h.GetProbe(); p != nil {
			d.Probe = &probeDoc{Time: p.GetTime().AsTime(), Defined: p.GetDefined(), Status: p.GetStatus(), Error: p.GetError()}
		}
		if _, err := s.obs.health.ReplaceOne(ctx, bson.M{"_id": d.AppID}, d, options.Replace().SetUpsert(true)); err != nil {
			return classify(err)
		}
	}
	return nil
}

// HealthReport returns appID's latest health report, or ErrNotFound when
// none was written in the last ObservationTTL.
func (s *Store) HealthReport(ctx context.Context, appID string) (*v1.HealthReport, error) {
	var d healthDoc
	err := s.obs.health.FindOne(ctx, bson.M{"_id": appID, "updated_at": bson.M{"$gte": time.Now().Add(-ObservationTTL)}}).Decode(&d)
	if err != nil {
		return nil, classify(err)
	}
	h := &v1.HealthReport{AppId: d.AppID, RunnerUp: d.RunnerUp, RunnerSince: timestamppb.New(d.RunnerSince),
		CrashReason: d.CrashReason, UpdatedAt: timestamppb.New(d.UpdatedAt)}
	for _, c := range d.Crashes {
		h.Crashes = append(h.Crashes, timestamppb.New(c))
	}
	if p := d.Probe; p != nil {
		h.Probe = &v1.HealthProbe{Time: timestamppb.New(p.Time), Defined: p.Defined, Status: p.Status, Error: p.Error}
	}
	return h, nil
}

// DeleteObservations removes appID's metrics, errors and health report.
func (s *Store) DeleteObservations(ctx context.Context, appID string) error {
	for _, c := range []*mongo.Collection{s.obs.metrics, s.obs.errors} {
		if _, err := c.DeleteMany(ctx, bson.M{"app_id": appID}); err != nil {
			return classify(err)
		}
	}
	_, err := s.obs.health.DeleteOne(ctx, bson.M{"_id": appID})
	return classify(err)
}

// SweepObservations deletes the observations older than ObservationTTL
// at now and returns how many. With TTL indexes the database does this by
// itself (within a minute or so of expiry).
func (s *Store) SweepObservations(ctx context.Context, now time.Time) (int64, error) {
	cutoff := now.Add(-ObservationTTL)
	var n int64
	for _, f := range []struct {
		c     *mongo.Collection
		field string
	}{{s.obs.metrics, "minute"}, {s.obs.errors, "time"}, {s.obs.health, "updated_at"}} {
		res, err := f.c.DeleteMany(ctx, bson.M{f.field: bson.M{"$lt": cutoff}})
		if err != nil {
			return n, classify(err)
		}
		n += res.DeletedCount
	}
	return n, nil
}

// sweep runs SweepObservations at most once per sweepEvery, and never
// where the database expires documents itself.
func (s *Store) sweep(ctx context.Context) error {
	o := s.obs
	if o.nativeTTL {
		return nil
	}
	o.sweepMu.Lock()
	due := time.Since(o.lastSweep) >= sweepEvery
	if due {
		o.lastSweep = time.Now()
	}
	o.sweepMu.Unlock()
	if !due {
		return nil
	}
	_, err := s.SweepObservations(ctx, time.Now())
	return err
}

// AppByIDOrName returns the app with the given id or name, whoever owns
// it (for admins, who may read any app's observations).
func (s *Store) AppByIDOrName(ctx context.Context, idOrName string) (*App, error) {
	var a App
	filter := bson.M{"$or": bson.A{bson.M{"_id": idOrName}, bson.M{"name": idOrName}}}
	if err := s.apps.FindOne(ctx, filter).Decode(&a); err != nil {
		return nil, classify(err)
	}
	return &a, nil
}
