package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// obsApp answers 2xx, 4xx and 5xx on demand, and crashes on /crash.
const obsApp = `import os
from fastapi import FastAPI, HTTPException, Request

app = FastAPI()

@app.get("/")
def root(request: Request):
    return {"request_id": request.headers.get("x-request-id")}

@app.get("/missing")
def missing():
    raise HTTPException(404, "no such thing")

@app.get("/boom")
def boom():
    return 1 / 0

@app.get("/crash")
def crash():
    os._exit(3)
%s`

// TestObservability sends known numbers of 2xx, 4xx and 5xx answers
// through the real gateway and runner, then checks that the metrics RPC
// counts exactly those, that the errors RPC lists them with the app's
// traceback, that health goes yellow with server errors, red when the app
// crashes and green after a redeploy, and that the operators' /metrics
// parses and moved by the same numbers.
func TestObservability(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--metrics-flush", "200ms", "--health-probe-interval", "300ms")
	var internal string
	select {
	case internal = <-p.internal:
	case <-time.After(30 * time.Second):
		t.Fatalf("the platform never printed its internal listener:\n%s", p.logs)
	}
	token, _ := p.signup(t, "watcher", "watch the numbers")
	p.deploy(t, token, "obs", fmt.Sprintf(obsApp, ""))
	m := gofastapiv1connect.NewMetricsServiceClient(http.DefaultClient, p.url(), connect.WithInterceptors(bearer(token)))
	ctx := context.Background()

	before := scrape(t, internal)
	const ok, missing, boom = 7, 3, 2
	for i := range ok {
		code, body := p.get("obs", "/")
		if code != 200 {
			t.Fatalf("GET obs/ = %d %s\n%s", code, body, p.logs)
		}
		if i == 0 && !regexp.MustCompile(`"request_id":"[0-9a-f]{16}"`).MatchString(body) {
			t.Errorf("the app read no X-Request-Id from the gateway: %s", body)
		}
	}
	for range missing {
		if code, _ := p.get("obs", "/missing"); code != 404 {
			t.Fatalf("GET obs/missing = %d, want 404", code)
		}
	}
	for range boom {
		if code, _ := p.get("obs", "/boom"); code != 500 {
			t.Fatalf("GET obs/boom = %d, want 500", code)
		}
	}

	// The recorder flushes every 200 ms: poll until every request is in.
	var stats *v1.Stats
	eventually(t, "stats count every request", func() bool {
		res, err := m.GetAppStats(ctx, connect.NewRequest(&v1.GetAppStatsRequest{IdOrName: "obs"}))
		if err != nil {
			t.Fatal(err)
		}
		stats = res.Msg.GetLast_24H()
		return stats.GetRequests() >= ok+missing+boom && stats.GetStatus_5Xx() >= boom
	})
	got := fmt.Sprintf("%d requests: %d 2xx, %d 4xx, %d 5xx", stats.GetRequests(), stats.GetStatus_2Xx(), stats.GetStatus_4Xx(), stats.GetStatus_5Xx())
	if want := fmt.Sprintf("%d requests: %d 2xx, %d 4xx, %d 5xx", ok+missing+boom, ok, missing, boom); got != want {
		t.Errorf("GetAppStats = %s, want %s", got, want)
	}
	if stats.GetP50Ms() <= 0 || stats.GetP99Ms() < stats.GetP50Ms() || stats.GetAvgMs() <= 0 {
		t.Errorf("latencies avg %v p50 %v p99 %v: want positive, p99 >= p50", stats.GetAvgMs(), stats.GetP50Ms(), stats.GetP99Ms())
	}

	// Errors: newest first, the 5xx with the app's traceback (the log
	// lines reach Redis on their own time: poll for them).
	var errs []*v1.RequestError
	eventually(t, "errors carry the traceback", func() bool {
		res, err := m.ListErrors(ctx, connect.NewRequest(&v1.ListErrorsRequest{IdOrName: "obs"}))
		if err != nil {
			t.Fatal(err)
		}
		errs = res.Msg.GetErrors()
		return len(errs) == missing+boom && strings.Contains(strings.Join(errs[0].GetTraceback(), "\n"), "ZeroDivisionError")
	})
	var lines []string
	for _, e := range errs {
		lines = append(lines, fmt.Sprintf("%s %s %d %s", e.GetMethod(), e.GetPath(), e.GetStatus(), e.GetClass()))
	}
	wantLines := []string{
		"GET /boom 500 ERROR_CLASS_SERVER", "GET /boom 500 ERROR_CLASS_SERVER",
		"GET /missing 404 ERROR_CLASS_CLIENT", "GET /missing 404 ERROR_CLASS_CLIENT", "GET /missing 404 ERROR_CLASS_CLIENT",
	}
	if strings.Join(lines, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("ListErrors:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
	}
	for _, e := range errs {
		tb := strings.Join(e.GetTraceback(), "\n")
		switch {
		case e.GetStatus() == 500 && (!strings.Contains(tb, "return 1 / 0") || !strings.Contains(tb, "ZeroDivisionError: division by zero") ||
			!strings.Contains(tb, "request_id="+e.GetRequestId())):
			t.Errorf("traceback of %s (request %s):\n%s\nwant the line `return 1 / 0` and ZeroDivisionError", e.GetPath(), e.GetRequestId(), tb)
		case e.GetStatus() == 404 && tb != "":
			t.Errorf("a 404 came with a traceback:\n%s", tb)
		}
	}
	out := p.mustCLIAs(token, "errors", "obs")
	t.Logf("gofastapi errors obs:\n%s", out)
	if !strings.Contains(out, "500 server  GET /boom") || !strings.Contains(out, "ZeroDivisionError") {
		t.Errorf("gofastapi errors obs:\n%s", out)
	}

	health := func() *v1.GetHealthResponse {
		res, err := m.GetHealth(ctx, connect.NewRequest(&v1.GetHealthRequest{IdOrName: "obs"}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg
	}
	if h := health(); h.GetStatus() != v1.HealthStatus_HEALTH_STATUS_YELLOW || !strings.Contains(h.GetReason(), "2 of 12 requests") {
		t.Errorf("health after 2 server errors in 12: %s %q, want yellow", h.GetStatus(), h.GetReason())
	}
	out = p.mustCLIAs(token, "stats", "obs")
	t.Logf("gofastapi stats obs:\n%s", out)
	if !strings.Contains(out, "12 requests: 7 2xx, 3 4xx, 2 5xx") || !strings.Contains(out, "health    yellow") {
		t.Errorf("gofastapi stats obs:\n%s", out)
	}

	// Operators' /metrics moved by the same numbers.
	after := scrape(t, internal)
	for class, n := range map[string]float64{"2xx": ok, "4xx": missing, "5xx": boom} {
		d := requestCount(after, class) - requestCount(before, class)
		if d != n {
			t.Errorf("/metrics: %s requests grew by %v, want %v", class, d, n)
		}
	}
	if v := value(after, "gofastapi_pool_cold_starts_total", "result", "ok"); v < 1 {
		t.Errorf("/metrics: gofastapi_pool_cold_starts_total{result=ok} = %v, want at least 1", v)
	}
	if v := value(after, "gofastapi_rpc_requests_total", "procedure", "/gofastapi.v1.MetricsService/GetAppStats"); v < 1 {
		t.Errorf("/metrics: GetAppStats calls = %v, want at least 1", v)
	}
	if _, found := after["gofastapi_pool_runners_warm"]; !found {
		t.Errorf("/metrics has no gofastapi_pool_runners_warm")
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGetURL(t, "http://"+internal+path); code != 200 {
			t.Errorf("GET %s = %d %s", path, code, body)
		}
	}

	// A crash: red, with the reason.
	if code, _ := p.get("obs", "/crash"); code != 502 {
		t.Errorf("GET obs/crash = %d, want 502", code)
	}
	eventually(t, "health turns red after the crash", func() bool {
		return health().GetStatus() == v1.HealthStatus_HEALTH_STATUS_RED
	})
	h := health()
	t.Logf("health after the crash: %s: %s", h.GetStatus(), h.GetReason())
	if !strings.Contains(h.GetReason(), "crashed") {
		t.Errorf("health after a crash: %q, want it to say the app crashed", h.GetReason())
	}

	// A redeploy (now with a /health) and a request: green, with the
	// app's own /health probed.
	p.deploy(t, token, "obs", fmt.Sprintf(obsApp, "\n@app.get(\"/health\")\ndef health():\n    return {\"ok\": True}\n"))
	if code, body := p.get("obs", "/"); code != 200 {
		t.Fatalf("GET obs/ after redeploy = %d %s", code, body)
	}
	defer func() { t.Logf("health after the redeploy: %s: %s", h.GetStatus(), h.GetReason()) }()
	eventually(t, "health is green after the redeploy, with /health probed", func() bool {
		h = health()
		return h.GetStatus() == v1.HealthStatus_HEALTH_STATUS_GREEN && strings.Contains(h.GetReason(), "GET /health answered 200")
	})
}

// eventually polls cond until it holds, failing after a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(100 * time.Millisecond) // polling a periodically flushed figure, not waiting for readiness
	}
}

// mustCLIAs runs the CLI with token.
func (p *platform) mustCLIAs(token string, args ...string) string {
	p.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "HOME="+p.home, "XDG_CONFIG_HOME="+filepath.Join(p.home, ".config"),
		"GOFASTAPI_SERVER="+p.url(), "GOFASTAPI_TOKEN="+token)
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		p.t.Fatalf("gofastapi %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// scrape reads the operators' /metrics and parses it with Prometheus's
// text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var parser expfmt.TextParser
	mfs, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs
}

// requestCount is the gateway's request count of a status class.
func requestCount(mfs map[string]*dto.MetricFamily, class string) float64 {
	mf := mfs["gofastapi_gateway_request_duration_seconds"]
	for _, m := range mf.GetMetric() {
		if hasLabel(m, "class", class) {
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

// value sums the counters and gauges of family name with label = v.
func value(mfs map[string]*dto.MetricFamily, name, label, v string) float64 {
	var sum float64
	for _, m := range mfs[name].GetMetric() {
		if hasLabel(m, label, v) {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, name, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == v {
			return true
		}
	}
	return false
}

func httpGetURL(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
