package launch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/runner/launch"
)

// benchModes runs f as a sub-benchmark for each mode.
func benchModes(b *testing.B, f func(b *testing.B, m mode)) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) { f(b, m) })
	}
}

// benchWorkDir is the parent of the benchmark's work dirs: a temporary
// directory, under GOFASTAPI_BENCH_WORKDIR if set (e.g. /dev/shm).
func benchWorkDir(b *testing.B) string {
	dir := os.Getenv("GOFASTAPI_BENCH_WORKDIR")
	if dir == "" {
		return b.TempDir()
	}
	base, err := os.MkdirTemp(dir, "gofastapi-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(base) })
	return base
}

// BenchmarkStart measures launch.Start until the handshake, that is until a
// generic runner is warm: an agent plus a fresh Python that imports the
// framework (exec), or an agent plus a Python forked from the zygote
// (zygote; the zygote itself starts before the timer).
//
//	go test ./runner/launch -run '^$' -bench '^BenchmarkStart$' -benchtime 20x
func BenchmarkStart(b *testing.B) {
	rd := startRedis(b)
	benchModes(b, func(b *testing.B, m mode) {
		socket := m.zygoteSocket(b)
		base := benchWorkDir(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r, err := launch.Start(context.Background(), launch.Config{
				Command:  []string{os.Args[0]},
				Env:      []string{agentEnv + "=1"},
				Zygote:   socket,
				WorkDir:  filepath.Join(base, fmt.Sprintf("runner-%d", i)),
				RedisURL: rd.runnerURL,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			r.Stop(10 * time.Second)
			b.StartTimer()
		}
	})
}

// BenchmarkColdStart measures, per runner: Start until the handshake
// (start-ms), then Specialize of an app (specialize-ms, as the caller sees
// it) plus its first GET /hello (first-get-ms), which together are the
// timed part. It also reports the agent's phase timings, the app's import
// among them. All are averages. The apps: helloApp (one route) and
// smallApp (ten routes, 100 KB of JSON read at import).
// Set GOFASTAPI_BENCH_WORKDIR to put work dirs elsewhere (e.g. /dev/shm).
//
//	go test ./runner/launch -run '^$' -bench ColdStart -benchtime 20x
func BenchmarkColdStart(b *testing.B) {
	rd := startRedis(b)
	apps := []struct{ name, version string }{
		{"hello", rd.putBundle(b, files("app.py", helloApp))},
		{"small", rd.putBundle(b, smallApp())},
	}
	for _, app := range apps {
		b.Run("app="+app.name, func(b *testing.B) {
			benchModes(b, func(b *testing.B, m mode) { benchColdStart(b, m, rd, app.version) })
		})
	}
}

// smallApp is the shape of the small app of make bench: ten routes and a
// 100 KB JSON file read at import. It serves /hello like helloApp.
func smallApp() []bundle.File {
	var data strings.Builder
	data.WriteString("[")
	for i := range 1600 {
		if i > 0 {
			data.WriteString(", ")
		}
		fmt.Fprintf(&data, `{"id": %d, "name": "item %d", "tags": ["a", "b"], "v": %g}`, i, i, float64(i)*1.5)
	}
	data.WriteString("]")
	var src strings.Builder
	src.WriteString("import json\nfrom fastapi import FastAPI\n\napp = FastAPI()\nDATA = json.load(open('data.json'))\n\n\n@app.get('/hello')\ndef hello():\n    return {'message': 'hello', 'items': len(DATA)}\n")
	for i := range 9 {
		fmt.Fprintf(&src, "\n\n@app.get('/r%d/{item}')\ndef r%d(item: int, q: str = ''):\n    return {'route': %d, 'item': item, 'q': q}\n", i, i, i)
	}
	return files("app.py", src.String(), "data.json", data.String())
}

// idleBeforeClaim is how long benchColdStart's runners wait, warm, before
// their Specialize.
const idleBeforeClaim = 100 * time.Millisecond

func benchColdStart(b *testing.B, m mode, rd *testRedis, version string) {
	socket := m.zygoteSocket(b)
	base := benchWorkDir(b)
	var start, spec, firstGet, fetch, verify, write, load, imp time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := time.Now()
		r, err := launch.Start(context.Background(), launch.Config{
			Command:  []string{os.Args[0]},
			Env:      []string{agentEnv + "=1"},
			Zygote:   socket,
			WorkDir:  filepath.Join(base, fmt.Sprintf("runner-%d", i)),
			RedisURL: rd.runnerURL,
		})
		if err != nil {
			b.Fatal(err)
		}
		start += time.Since(s)
		// A pool's warm runner waits for its claim, and a waiting runner
		// grows its heap for the app (bootstrap.py, grow_heap); this one
		// waits as long as the bench's pool runners wait at least between
		// cold starts, outside the timing.
		time.Sleep(idleBeforeClaim)
		b.StartTimer()
		s = time.Now()
		res, err := r.Specialize(context.Background(), &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"})
		if err != nil {
			b.Fatal(err)
		}
		spec += time.Since(s)
		s = time.Now()
		resp, err := appClient(res.GetAppAddr()).Get("http://app/hello")
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
		imp += time.Duration(res.GetImportMicros()) * time.Microsecond
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
	b.ReportMetric(ms(imp), "import-ms")
}

// BenchmarkBurst measures 20 different apps requested at once with no warm
// runner: 20 concurrent launch.Start + Specialize + first GET, until the
// last answered (burst-ms, per burst). It is the worst case the pool meets
// when a burst outgrows its warm set; exec mode makes 20 fresh Pythons
// import the framework at once.
//
//	go test ./runner/launch -run '^$' -bench Burst -benchtime 3x
func BenchmarkBurst(b *testing.B) {
	const apps = 20
	rd := startRedis(b)
	versions := make([]string, apps)
	for i := range versions {
		versions[i] = rd.putBundle(b, files("app.py", fmt.Sprintf("%s\nAPP = %d\n", helloApp, i)))
	}
	benchModes(b, func(b *testing.B, m mode) {
		socket := m.zygoteSocket(b)
		base := benchWorkDir(b)
		var total time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			runners := make([]*launch.Runner, apps)
			errs := make([]error, apps)
			s := time.Now()
			var wg sync.WaitGroup
			for j := range apps {
				wg.Go(func() {
					r, err := launch.Start(context.Background(), launch.Config{
						Command:  []string{os.Args[0]},
						Env:      []string{agentEnv + "=1"},
						Zygote:   socket,
						WorkDir:  filepath.Join(base, fmt.Sprintf("runner-%d-%d", i, j)),
						RedisURL: rd.runnerURL,
					})
					if err != nil {
						errs[j] = err
						return
					}
					runners[j] = r
					res, err := r.Specialize(context.Background(), &v1.SpecializeRequest{Version: versions[j], Entrypoint: "app.py"})
					if err != nil {
						errs[j] = err
						return
					}
					resp, err := appClient(res.GetAppAddr()).Get("http://app/hello")
					if err != nil {
						errs[j] = err
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				})
			}
			wg.Wait()
			total += time.Since(s)
			b.StopTimer()
			for _, r := range runners {
				if r != nil {
					r.Stop(10 * time.Second)
				}
			}
			if err := errors.Join(errs...); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "burst-ms")
	})
}
