package telemetry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/redis/go-redis/v9"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// stubMetrics answers GetAppStats and fails GetHealth with NotFound.
type stubMetrics struct {
	gofastapiv1connect.UnimplementedMetricsServiceHandler
}

func (stubMetrics) GetAppStats(context.Context, *connect.Request[v1.GetAppStatsRequest]) (*connect.Response[v1.GetAppStatsResponse], error) {
	return connect.NewResponse(&v1.GetAppStatsResponse{}), nil
}

func (stubMetrics) GetHealth(context.Context, *connect.Request[v1.GetHealthRequest]) (*connect.Response[v1.GetHealthResponse], error) {
	return nil, connect.NewError(connect.CodeNotFound, errors.New("no such app"))
}

// scrape serves reg through Handler and parses /metrics with Prometheus's
// text parser.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(Handler(reg))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs
}

// counts returns family name's counter values keyed by their labels.
func counts(mfs map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range mfs[name].GetMetric() {
		var key []string
		for _, l := range m.GetLabel() {
			key = append(key, l.GetName()+"="+l.GetValue())
		}
		out[strings.Join(key, ",")] = m.GetCounter().GetValue()
	}
	return out
}

func TestRPCInterceptorCountsCallsByCode(t *testing.T) {
	reg := prometheus.NewRegistry()
	rpc, err := NewRPC(reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(gofastapiv1connect.NewMetricsServiceHandler(stubMetrics{}, connect.WithInterceptors(rpc)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := gofastapiv1connect.NewMetricsServiceClient(http.DefaultClient, srv.URL, connect.WithInterceptors(rpc))
	ctx := context.Background()
	for range 2 {
		if _, err := c.GetAppStats(ctx, connect.NewRequest(&v1.GetAppStatsRequest{})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.GetHealth(ctx, connect.NewRequest(&v1.GetHealthRequest{})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("GetHealth: %v", err)
	}
	got := counts(scrape(t, reg), "gofastapi_rpc_requests_total")
	want := map[string]float64{ // served calls only: the client side is not counted again
		"code=ok,procedure=/gofastapi.v1.MetricsService/GetAppStats":      2,
		"code=not_found,procedure=/gofastapi.v1.MetricsService/GetHealth": 1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rpc calls (-want +got):\n%s", diff)
	}
}

func TestRedisErrorsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	se, err := NewStoreErrors(reg)
	if err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on: every command fails to dial.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	rdb.AddHook(se.RedisHook())
	if err := rdb.Get(context.Background(), "k").Err(); err == nil {
		t.Fatal("GET on a closed port succeeded")
	}
	got := counts(scrape(t, reg), "gofastapi_redis_errors_total")
	if got["command=get"] != 1 || got["command=dial"] < 1 {
		t.Errorf("redis errors %v, want get=1 and dial>=1", got)
	}
}

func TestPoolMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cs, err := NewPool(reg, func() PoolCounts { return PoolCounts{Warm: 2, Claimed: 3, Starting: 1, Total: 7} })
	if err != nil {
		t.Fatal(err)
	}
	cs.Observe(&v1.ColdStart{TotalMicros: 8000})
	cs.Observe(&v1.ColdStart{TotalMicros: 9000})
	cs.Observe(&v1.ColdStart{Error: "ImportError"})
	mfs := scrape(t, reg)
	if diff := cmp.Diff(map[string]float64{"result=ok": 2, "result=failed": 1}, counts(mfs, "gofastapi_pool_cold_starts_total")); diff != "" {
		t.Errorf("cold starts (-want +got):\n%s", diff)
	}
	if n := mfs["gofastapi_pool_cold_start_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); n != 2 {
		t.Errorf("cold start durations: %d, want 2", n)
	}
	gauges := map[string]float64{}
	for _, name := range []string{"warm", "claimed", "starting", "total"} {
		gauges[name] = mfs["gofastapi_pool_runners_"+name].GetMetric()[0].GetGauge().GetValue()
	}
	if diff := cmp.Diff(map[string]float64{"warm": 2, "claimed": 3, "starting": 1, "total": 7}, gauges); diff != "" {
		t.Errorf("runner gauges (-want +got):\n%s", diff)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	var down atomic.Bool
	srv := httptest.NewServer(Handler(prometheus.NewRegistry(),
		Check{Name: "redis", Fn: func(context.Context) error {
			if down.Load() {
				return errors.New("connection refused")
			}
			return nil
		}}))
	defer srv.Close()
	get := func(path string) (int, string) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s, want 200", code, body)
	}
	down.Store(true)
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "redis: connection refused") {
		t.Errorf("/readyz with redis down = %d %q, want 503 naming redis", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz with redis down = %d, want 200 (alive, not ready)", code)
	}
}
