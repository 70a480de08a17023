package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/latency"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memSink keeps what is flushed to it.
type memSink struct {
	mu      sync.Mutex
	windows []*v1.MetricsWindow
	errs    []*v1.RequestError
	health  []*v1.HealthReport
}

func (s *memSink) WriteWindows(_ context.Context, ws []*v1.MetricsWindow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.windows = append(s.windows, ws...)
	return nil
}

func (s *memSink) WriteErrors(_ context.Context, es []*v1.RequestError) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, es...)
	return nil
}

func (s *memSink) WriteHealth(_ context.Context, hs []*v1.HealthReport) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.health = append(s.health, hs...)
	return nil
}

func newRecorder(t testing.TB, sink Sink, reg prometheus.Registerer) *Recorder {
	t.Helper()
	r, err := New(Config{Sink: sink, FlushInterval: time.Hour, ProbeInterval: time.Hour, ProbeTimeout: time.Second,
		MaxErrors: 3, Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRecordCountsEveryRequestOnce(t *testing.T) {
	sink := &memSink{}
	r := newRecorder(t, sink, nil)
	// Two apps, 8 goroutines, a flush in the middle: every request is in
	// exactly one window.
	statuses := []int{200, 201, 302, 404, 422, 500, 502}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 700 {
				app := fmt.Sprintf("app%d", g%2)
				r.Record(app, statuses[i%len(statuses)], time.Duration(i)*time.Microsecond, []byte("GET"), []byte("/x"), []byte("id"))
			}
		})
		if g == 4 {
			r.Flush(context.Background())
		}
	}
	wg.Wait()
	r.Flush(context.Background())

	type total struct{ Requests, S2, S4, S5, Buckets int64 }
	got := map[string]total{}
	for _, w := range sink.windows {
		tt := got[w.GetAppId()]
		tt.Requests += w.GetRequests()
		tt.S2 += w.GetStatus_2Xx()
		tt.S4 += w.GetStatus_4Xx()
		tt.S5 += w.GetStatus_5Xx()
		for _, c := range w.GetLatencyBuckets() {
			tt.Buckets += c
		}
		got[w.GetAppId()] = tt
	}
	want := map[string]total{
		"app0": {Requests: 2800, S2: 1200, S4: 800, S5: 800, Buckets: 2800},
		"app1": {Requests: 2800, S2: 1200, S4: 800, S5: 800, Buckets: 2800},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flushed totals (-want +got):\n%s", diff)
	}
}

func TestErrorsKeepTheLatest(t *testing.T) {
	sink := &memSink{}
	r := newRecorder(t, sink, nil)
	r.Record("a", 200, time.Millisecond, []byte("GET"), []byte("/ok"), []byte("r0"))
	for i := 1; i <= 5; i++ {
		r.Record("a", 400+i, time.Millisecond, []byte("POST"), fmt.Appendf(nil, "/e%d?q=1", i), fmt.Appendf(nil, "r%d", i))
	}
	r.Record("a", 503, time.Millisecond, []byte("GET"), []byte("/boom"), []byte("r6"))
	r.Flush(context.Background())
	var got []string
	for _, e := range sink.errs {
		got = append(got, fmt.Sprintf("%s %s %d %s %s", e.GetMethod(), e.GetPath(), e.GetStatus(), e.GetClass(), e.GetRequestId()))
	}
	want := []string{ // MaxErrors is 3: the latest three, oldest first
		"POST /e4?q=1 404 ERROR_CLASS_CLIENT r4",
		"POST /e5?q=1 405 ERROR_CLASS_CLIENT r5",
		"GET /boom 503 ERROR_CLASS_SERVER r6",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flushed errors (-want +got):\n%s", diff)
	}
	sink.errs = nil
	r.Flush(context.Background())
	if len(sink.errs) != 0 {
		t.Errorf("a second flush wrote %d errors again", len(sink.errs))
	}
}

func TestLatencyBuckets(t *testing.T) {
	sink := &memSink{}
	r := newRecorder(t, sink, nil)
	for range 99 {
		r.Record("a", 200, 2*time.Millisecond, nil, nil, nil)
	}
	r.Record("a", 200, 3*time.Second, nil, nil, nil)
	r.Flush(context.Background())
	w := sink.windows[0]
	counts := make([]int64, latency.NumBuckets)
	for i, c := range w.GetLatencyBuckets() {
		counts[i] = c
	}
	if p50 := latency.Quantile(counts, 0.5); p50 < 1750*time.Microsecond || p50 > 2250*time.Microsecond {
		t.Errorf("p50 = %v, want about 2ms", p50)
	}
	if p100 := latency.Quantile(counts, 1); p100 < 2500*time.Millisecond || p100 > 3500*time.Millisecond {
		t.Errorf("max = %v, want about 3s", p100)
	}
	if got, want := w.GetLatencySumMicros(), int64(99*2000+3_000_000); got != want {
		t.Errorf("latency sum = %d us, want %d", got, want)
	}
}

func TestHealthReports(t *testing.T) {
	sink := &memSink{}
	r := newRecorder(t, sink, nil)
	r.RunnerUp("a", "127.0.0.1:1")
	r.Crashed("a", "exit status 1")
	r.RunnerDown("a", "127.0.0.1:1")
	r.RunnerUp("b", "127.0.0.1:3")
	r.RunnerUp("b", "127.0.0.1:4")
	r.RunnerDown("b", "127.0.0.1:3") // the old runner's stop comes late
	r.Flush(context.Background())
	got := map[string]string{}
	for _, h := range sink.health {
		got[h.GetAppId()] = fmt.Sprintf("up=%v crashes=%d reason=%q", h.GetRunnerUp(), len(h.GetCrashes()), h.GetCrashReason())
	}
	want := map[string]string{
		"a": `up=false crashes=1 reason="exit status 1"`,
		"b": `up=true crashes=0 reason=""`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("health reports (-want +got):\n%s", diff)
	}
	sink.health = nil
	r.Flush(context.Background())
	if len(sink.health) != 0 {
		t.Errorf("unchanged health flushed again: %v", sink.health)
	}
}

func TestProbe(t *testing.T) {
	mux := http.NewServeMux()
	var probed sync.WaitGroup
	probed.Add(1)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get(ProbeHeader) == "" {
			t.Errorf("probe without %s", ProbeHeader)
		}
		w.WriteHeader(503)
	})
	sick := httptest.NewServer(mux)
	defer sick.Close()
	none := httptest.NewServer(http.NotFoundHandler())
	defer none.Close()

	sink := &memSink{}
	r := newRecorder(t, sink, nil)
	r.RunnerUp("sick", strings.TrimPrefix(sick.URL, "http://"))
	r.RunnerUp("none", strings.TrimPrefix(none.URL, "http://"))
	r.probeAll(context.Background())
	r.Flush(context.Background())
	got := map[string]string{}
	for _, h := range sink.health {
		p := h.GetProbe()
		got[h.GetAppId()] = fmt.Sprintf("defined=%v status=%d err=%q", p.GetDefined(), p.GetStatus(), p.GetError())
	}
	want := map[string]string{
		"sick": `defined=true status=503 err=""`,
		"none": `defined=false status=404 err=""`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("probes (-want +got):\n%s", diff)
	}
}

func TestPrometheusHistogram(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	r := newRecorder(t, &memSink{}, reg)
	for range 3 {
		r.Record("a", 200, time.Millisecond, nil, nil, nil)
	}
	r.Record("a", 503, time.Millisecond, nil, nil, nil)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if n := m.GetHistogram().GetSampleCount(); n > 0 {
				got[m.GetLabel()[0].GetValue()] = n
			}
		}
	}
	if diff := cmp.Diff(map[string]uint64{"2xx": 3, "5xx": 1}, got); diff != "" {
		t.Errorf("histogram counts by class (-want +got):\n%s", diff)
	}
}

// BenchmarkRecord measures recording one request, the gateway's per-request
// cost of metrics: a 2xx (counters and histogram only) and a 5xx (which
// also keeps a copy of the request line), from every core at once.
func BenchmarkRecord(b *testing.B) {
	for _, tc := range []struct {
		name       string
		status     int
		prometheus bool
	}{
		{"2xx", 200, false},
		{"2xx+prometheus", 200, true},
		{"5xx+prometheus", 500, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var reg prometheus.Registerer
			if tc.prometheus {
				reg = prometheus.NewRegistry()
			}
			r := newRecorder(b, &memSink{}, reg)
			method, path, id := []byte("GET"), []byte("/items/42?q=x"), []byte("0123456789abcdef")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				d := time.Duration(0)
				for pb.Next() {
					d += 7 * time.Microsecond
					r.Record("app1", tc.status, d%(50*time.Millisecond), method, path, id)
				}
			})
		})
	}
}
