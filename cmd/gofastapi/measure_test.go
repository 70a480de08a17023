package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestMeasure prints the figures in the README: cold start (first request
// for an app with no runner -> full response) beside a fresh `python3 -m
// uvicorn` start of the same app, and one warm request through the gateway
// beside the same request sent to the runner directly. It asserts nothing
// about time (the machine is shared); run it with `make bench`.
func TestMeasure(t *testing.T) {
	if os.Getenv("GOFASTAPI_MEASURE") == "" {
		t.Skip("set GOFASTAPI_MEASURE=1 (make bench)")
	}
	const apps, warmReqs = 20, 2000
	src := t.TempDir()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--warm", "2", "--debug-endpoints")
	p.mustCLI("signup", "--username", "bench", "--password", "benchmark")
	for i := range apps {
		f := writeFile(t, src, fmt.Sprintf("cold%d.py", i), fmt.Sprintf(helloApp, "cold"))
		p.mustCLI("deploy", f)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(host, addr string) time.Duration {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Host = host
		t0 := time.Now()
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		d := time.Since(t0)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d", host, res.StatusCode)
		}
		return d
	}
	gw := "127.0.0.1:" + p.port
	var cold []time.Duration
	for i := range apps {
		p.waitWarm(2)
		cold = append(cold, get(fmt.Sprintf("cold%d.localhost", i), gw))
	}

	var base []time.Duration
	for i := range 5 {
		base = append(base, uvicornColdStart(t, src, fmt.Sprintf("cold%d", i)))
	}

	addr := p.runnerAddr(t)
	var viaGW, direct []time.Duration
	for range 200 { // warm up both paths
		get("cold0.localhost", gw)
		get("cold0.localhost", addr)
	}
	for range warmReqs {
		viaGW = append(viaGW, get("cold0.localhost", gw))
		direct = append(direct, get("cold0.localhost", addr))
	}
	fmt.Printf("\n%-52s %10s %10s %10s\n", "figure", "p50", "p90", "max")
	row := func(name string, d []time.Duration) {
		slices.Sort(d)
		fmt.Printf("%-52s %10s %10s %10s\n", name, pct(d, 50), pct(d, 90), d[len(d)-1].Round(time.Microsecond))
	}
	row(fmt.Sprintf("cold start via gateway (%d apps)", apps), cold)
	row("baseline: python3 -m uvicorn start to first response", base)
	row(fmt.Sprintf("warm GET via gateway (%d, concurrency 1)", warmReqs), viaGW)
	row("baseline: warm GET direct to the runner", direct)
	fmt.Printf("gateway adds %s at p50\n", pct(viaGW, 50)-pct(direct, 50))
}

func pct(d []time.Duration, p int) time.Duration {
	return d[(len(d)-1)*p/100].Round(time.Microsecond)
}

// waitWarm polls the pool until n runners are warm, so each cold start
// measures the path with a warm runner available.
func (p *platform) waitWarm(n int) {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var s struct{ Stats struct{ Warm int } }
		if res, err := http.Get("http://127.0.0.1:" + p.port + "/debug/pool"); err == nil {
			json.NewDecoder(res.Body).Decode(&s)
			res.Body.Close()
			if s.Stats.Warm >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling the pool's state between measurements
	}
	p.t.Fatalf("pool never had %d warm runners", n)
}

func (p *platform) runnerAddr(t *testing.T) string {
	res, err := http.Get("http://127.0.0.1:" + p.port + "/debug/pool")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var s struct {
		Claimed []struct{ Addr string }
	}
	json.NewDecoder(res.Body).Decode(&s)
	if len(s.Claimed) == 0 {
		t.Fatal("no claimed runner")
	}
	return s.Claimed[0].Addr
}

// uvicornColdStart starts the app with a fresh `python3 -m uvicorn` and
// returns the time until its first full response.
func uvicornColdStart(t *testing.T, dir, module string) time.Duration {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	t0 := time.Now()
	cmd := exec.Command("/usr/bin/python3", "-m", "uvicorn", "--port", fmt.Sprint(port), "--log-level", "warning", module+":app")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for time.Since(t0) < 30*time.Second {
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return time.Since(t0)
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("uvicorn %s never answered", filepath.Join(dir, module))
	return 0
}
