package metrics

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/proto/appaddr"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/latency"
)

// maxErrorPath is the longest method or path kept of an error answer.
const maxErrorPath = 1024

// Recorder aggregates requests per app in memory and flushes them to a
// Sink. It implements gateway.Recorder. It is safe for concurrent use.
type Recorder struct {
	cfg Config

	// apps maps app id -> *appStats. Readers load it without a lock;
	// appsMu serializes writers, which copy the map, so a request never
	// waits for another app's first request.
	apps   atomic.Pointer[map[string]*appStats]
	appsMu sync.Mutex

	// byClass are the operators' latency histograms, one per status class
	// (index status/100), resolved once so recording skips the label
	// lookup. Nil without a Registerer.
	byClass [6]prometheus.Observer

	healthMu sync.Mutex
	health   map[string]*healthState // app id -> runner state

	probe *http.Client

	stop     context.CancelFunc
	done     chan struct{}
	started  atomic.Bool
	flushMu  sync.Mutex // one flush at a time (the loop and Close)
	flushCtx context.Context
}

// appStats are one app's counts since the last flush.
type appStats struct {
	requests  atomic.Int64
	byClass   [6]atomic.Int64 // index status/100; 1xx-3xx count as 2xx when flushed
	sumMicros atomic.Int64
	buckets   [latency.NumBuckets]atomic.Int64
	// idle counts flushes without requests; an app idle long enough is
	// dropped from the map.
	idle int

	errMu sync.Mutex
	errs  []*v1.RequestError // the latest, at most cfg.MaxErrors
	next  int                // where the next error goes once errs is full
}

// New returns a Recorder for cfg. Start begins flushing and probing.
func New(cfg Config) (*Recorder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxErrors == 0 {
		cfg.MaxErrors = 50
	}
	r := &Recorder{
		cfg:    cfg,
		health: map[string]*healthState{},
		probe: &http.Client{Timeout: cfg.ProbeTimeout, Transport: &http.Transport{
			DisableKeepAlives: true,
			// A probe's URL names no runner: the runner's address is in the
			// request's context (see probeOne), whatever its form.
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return appaddr.Dial(ctx, ctx.Value(probeAddrKey{}).(string))
			},
		}},
		done: make(chan struct{}),
	}
	empty := map[string]*appStats{}
	r.apps.Store(&empty)
	if cfg.Registerer != nil {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "gofastapi", Subsystem: "gateway", Name: "request_duration_seconds",
			Help:    "Time from an app request's arrival to its response head, by status class; its _count is the request rate.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"class"})
		if err := cfg.Registerer.Register(h); err != nil {
			return nil, err
		}
		for i, c := range []string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"} {
			r.byClass[i] = h.WithLabelValues(c)
		}
	}
	return r, nil
}

// Record counts one request of app appID answered with status after d.
// method, path (with query) and requestID are only read during the call;
// they are copied for an error answer and ignored otherwise.
func (r *Recorder) Record(appID string, status int, d time.Duration, method, path, requestID []byte) {
	s := r.app(appID)
	class := status / 100
	if class < 0 || class > 5 {
		class = 0
	}
	s.requests.Add(1)
	s.byClass[class].Add(1)
	s.sumMicros.Add(int64(d / time.Microsecond))
	s.buckets[latency.Bucket(d)].Add(1)
	if o := r.byClass[class]; o != nil {
		o.Observe(d.Seconds())
	}
	if status >= 400 {
		r.keepError(s, appID, status, method, path, requestID)
	}
}

// app returns appID's stats, creating them on its first request.
func (r *Recorder) app(appID string) *appStats {
	if s := (*r.apps.Load())[appID]; s != nil {
		return s
	}
	r.appsMu.Lock()
	defer r.appsMu.Unlock()
	old := *r.apps.Load()
	if s := old[appID]; s != nil {
		return s
	}
	m := make(map[string]*appStats, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	s := &appStats{}
	m[appID] = s
	r.apps.Store(&m)
	return s
}

// keepError copies one error answer into s's ring of the latest ones.
func (r *Recorder) keepError(s *appStats, appID string, status int, method, path, requestID []byte) {
	class := v1.ErrorClass_ERROR_CLASS_CLIENT
	if status >= 500 {
		class = v1.ErrorClass_ERROR_CLASS_SERVER
	}
	e := &v1.RequestError{
		Time: timestamppb.Now(), Method: clip(method), Path: clip(path), Status: int32(status),
		Class: class, RequestId: clip(requestID), AppId: appID,
	}
	s.errMu.Lock()
	if len(s.errs) < r.cfg.MaxErrors {
		s.errs = append(s.errs, e)
	} else {
		s.errs[s.next] = e
		s.next = (s.next + 1) % len(s.errs)
	}
	s.errMu.Unlock()
}

func clip(b []byte) string {
	if len(b) > maxErrorPath {
		b = b[:maxErrorPath]
	}
	return string(b)
}
