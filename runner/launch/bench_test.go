package launch_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/runner/launch"
)

// BenchmarkColdStart measures, per runner: Start until the handshake
// (start-ms), then Specialize of a small app (specialize-ms, as the caller
// sees it) plus its first GET /hello (first-get-ms), which together are the
// timed part. It also reports the agent's phase timings. All are averages.
// Set GOFASTAPI_BENCH_WORKDIR to put work dirs elsewhere (e.g. /dev/shm).
//
//	go test ./runner/launch -run '^$' -bench ColdStart -benchtime 20x
func BenchmarkColdStart(b *testing.B) {
	rd := startRedis(b)
	version := rd.putBundle(b, files("app.py", helloApp))
	base := b.TempDir()
	if dir := os.Getenv("GOFASTAPI_BENCH_WORKDIR"); dir != "" {
		var err error
		if base, err = os.MkdirTemp(dir, "gofastapi-bench"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(base) })
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var start, spec, firstGet, fetch, verify, write, load, firstByte time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := time.Now()
		r, err := launch.Start(context.Background(), launch.Config{
			Command:  []string{os.Args[0]},
			Env:      []string{agentEnv + "=1"},
			WorkDir:  filepath.Join(base, fmt.Sprintf("runner-%d", i)),
			RedisURL: rd.runnerURL,
		})
		if err != nil {
			b.Fatal(err)
		}
		start += time.Since(s)
		b.StartTimer()
		s = time.Now()
		res, err := r.Specialize(context.Background(), &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"})
		if err != nil {
			b.Fatal(err)
		}
		spec += time.Since(s)
		s = time.Now()
		resp, err := client.Get("http://" + res.GetAppAddr() + "/hello")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		firstGet += time.Since(s)
		b.StopTimer()
		fetch += time.Duration(res.GetFetchMicros()) * time.Microsecond
		verify += time.Duration(res.GetVerifyMicros()) * time.Microsecond
		write += time.Duration(res.GetWriteMicros()) * time.Microsecond
		load += time.Duration(res.GetLoadMicros()) * time.Microsecond
		firstByte += time.Duration(res.GetFirstByteMicros()) * time.Microsecond
		r.Stop(10 * time.Second)
		b.StartTimer()
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(start), "start-ms")
	b.ReportMetric(ms(spec), "specialize-ms")
	b.ReportMetric(ms(firstGet), "first-get-ms")
	b.ReportMetric(ms(fetch), "fetch-ms")
	b.ReportMetric(ms(verify), "verify-ms")
	b.ReportMetric(ms(write), "write-ms")
	b.ReportMetric(ms(load), "load-ms")
	b.ReportMetric(ms(firstByte), "firstbyte-ms")
}
