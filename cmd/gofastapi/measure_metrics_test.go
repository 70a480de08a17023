package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
)

// TestMeasureMetricsCost is part of `make bench`: the gateway's warm
// throughput with per-app metrics recorded and without, in the same run.
// Two platforms serve the same app, one with --app-metrics=false; wrk
// loads each in turn, alternating, and the medians are compared. It
// asserts nothing about time; the figure is printed beside its target.
func TestMeasureMetricsCost(t *testing.T) {
	if os.Getenv("GOFASTAPI_MEASURE") == "" {
		t.Skip("set GOFASTAPI_MEASURE=1 (make bench)")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		fmt.Println("metrics cost: wrk not installed (make bench installs it)")
		return
	}
	start := func(extra ...string) *platform {
		args := append([]string{"--log-level", "warn", "--metrics-flush", "1s"}, extra...)
		p := startPlatform(t, t.TempDir(), t.TempDir(), args...)
		token, _ := p.signup(t, "bench", "benchmark")
		p.deploy(t, token, "bench", "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get('/')\ndef root():\n    return {'ok': True}\n")
		for range 100 { // cold start and warm-up outside the measurement
			if code, body := p.get("bench", "/"); code != 200 {
				t.Fatalf("GET bench/ = %d %s", code, body)
			}
		}
		return p
	}
	on := start()
	off := start("--app-metrics=false")
	const rounds = 5
	var withMetrics, without []float64
	for i := range rounds {
		// Alternate which goes first, so neither always runs on a machine
		// the other just warmed (or tired).
		if i%2 == 0 {
			withMetrics = append(withMetrics, wrkFor(t, on, "3s"))
			without = append(without, wrkFor(t, off, "3s"))
		} else {
			without = append(without, wrkFor(t, off, "3s"))
			withMetrics = append(withMetrics, wrkFor(t, on, "3s"))
		}
	}
	a, b := median(withMetrics), median(without)
	fmt.Printf("\nwarm throughput, wrk -t2 -c64 -d3s x%d alternating, same app: metrics on %.0f req/s, off %.0f req/s (on/off %.3f, cost %+.1f%%; target: cost within 5%%)\n",
		rounds, a, b, a/b, 100*(b-a)/b)
	fmt.Printf("  rounds, req/s: on %.0f, off %.0f\n", withMetrics, without)
}

// wrkFor loads app "bench" of p through its gateway for d and returns
// requests/second.
func wrkFor(t *testing.T, p *platform, d string) float64 {
	t.Helper()
	out, err := exec.Command("wrk", "-t2", "-c64", "-d"+d, "-H", "Host: bench.localhost", p.url()+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	return parseWrk(t, out)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
