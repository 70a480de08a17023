package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gofastapi/gofastapi/proto/appaddr"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// TestMeasure is `make bench`: it starts the real platform and prints every
// figure of the README's table beside a baseline measured in the same run.
// It asserts nothing about time (the machine is shared and noisy).
func TestMeasure(t *testing.T) {
	if os.Getenv("GOFASTAPI_MEASURE") == "" {
		t.Skip("set GOFASTAPI_MEASURE=1 (make bench)")
	}
	coldN := envInt("BENCH_COLD", 60)
	data := []byte(benchData())
	src := t.TempDir()
	writeFile(t, src, "data.json", string(data))
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--warm", "2", "--max-runners", "150", "--debug-endpoints", "--log-level", "warn")
	p.mustCLI("signup", "--username", "bench", "--password", "benchmark")
	token := p.token(t)
	apps := gofastapiv1connect.NewAppServiceClient(http.DefaultClient, "http://127.0.0.1:"+p.port, connect.WithInterceptors(bearer(token)))
	// stages collects, per deploy stage, when each deploy reached it.
	stages := map[v1.DeployStage][]time.Duration{}
	// deployFiles creates app name if needed, then deploys files as it and
	// returns how long the Deploy RPC took.
	// deployFiles deploys files as app name; without warm the app's first
	// request is a cold start, as after scale to zero.
	deployFiles := func(name string, files []*v1.File, warm bool) time.Duration {
		if _, err := apps.CreateApp(context.Background(), connect.NewRequest(&v1.CreateAppRequest{Name: name})); err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
			t.Fatal(err)
		}
		t0 := time.Now()
		s, err := apps.Deploy(context.Background(), connect.NewRequest(&v1.DeployRequest{IdOrName: name, Files: files, NoWarm: !warm}))
		if err != nil {
			t.Fatal(err)
		}
		for s.Receive() {
			m := s.Msg()
			stages[m.GetStage()] = append(stages[m.GetStage()], time.Duration(m.GetElapsedMicros())*time.Microsecond)
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		return time.Since(t0)
	}
	// benchFiles are the bench app's files; deploy deploys them as app name.
	benchFiles := func(greeting string) []*v1.File {
		return []*v1.File{{Name: "app.py", Content: []byte(benchApp(greeting))}, {Name: "data.json", Content: data}}
	}
	deploy := func(name, greeting string) time.Duration { return deployFiles(name, benchFiles(greeting), true) }
	gw := "127.0.0.1:" + p.port
	// A runner's app listens on a Unix socket (runner.AppNetwork): a
	// request for it names runnerHost, which is dialed there.
	const runnerHost = "runner.invalid"
	runnerAddr := ""
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, network, hostport string) (net.Conn, error) {
			if hostport == runnerHost+":80" {
				return appaddr.Dial(ctx, runnerAddr)
			}
			return (&net.Dialer{}).DialContext(ctx, network, hostport)
		}}}
	get := func(host, addr, path string) (time.Duration, string) {
		if strings.HasPrefix(addr, "unix:") {
			addr = runnerHost
		}
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Host = host
		t0 := time.Now()
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		d := time.Since(t0)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s%s: %d %s", host, path, res.StatusCode, b)
		}
		return d, string(b)
	}
	var rows []benchRow

	// coldStarts deploys n apps prefix0..prefix{n-1} of the same files and
	// requests each once, with a warm runner available each time; the
	// baseline is the same app (module, source) under a fresh uvicorn.
	coldStarts := func(prefix string, n int, files []*v1.File, module, source string) (d, base []time.Duration) {
		for i := range n {
			deployFiles(fmt.Sprintf("%s%d", prefix, i), files, false)
		}
		for i := range n {
			p.waitWarm(2)
			took, _ := get(fmt.Sprintf("%s%d.localhost", prefix, i), gw, "/")
			d = append(d, took)
		}
		writeFile(t, src, module+".py", source)
		for range 7 {
			base = append(base, uvicornColdStart(t, src, module))
		}
		return d, base
	}
	cold, base := coldStarts("cold", coldN, benchFiles("cold"), "app", benchApp("cold"))
	rows = append(rows, benchRow{name: fmt.Sprintf("cold start, %d apps (~100 KB bundle, 10 routes)", coldN), d: cold, base: base,
		baseName: "fresh python3 -m uvicorn", target: "p50 <= 10ms, p99 <= 50ms"})
	phases := coldStartPhases(t, apps, coldN)

	// The same for the smallest app: what the platform itself costs.
	helloN := max(coldN/2, 1)
	hello, helloBase := coldStarts("hello", helloN, []*v1.File{{Name: "app.py", Content: []byte(benchHello)}}, "hello", benchHello)
	rows = append(rows, benchRow{name: fmt.Sprintf("cold start, %d hello apps (1 route)", helloN), d: hello, base: helloBase,
		baseName: "fresh python3 -m uvicorn", target: "(the platform's own floor)"})

	// Burst: 50 concurrent first requests for one cold app.
	deployFiles("burst", benchFiles("burst"), false)
	p.waitWarm(2)
	burst := concurrentGets(t, get, 50, func(int) string { return "burst.localhost" }, gw)
	p.waitLog("burst", "cold start")
	specs := strings.Count(p.mustCLI("logs", "burst"), "cold start")
	rows = append(rows, benchRow{name: fmt.Sprintf("burst: 50 concurrent first requests, 1 app (%d specialization)", specs), d: burst, target: "exactly 1 specialization"})

	// Burst: 20 different cold apps at once (more than the warm pool).
	for i := range 20 {
		deployFiles(fmt.Sprintf("many%d", i), benchFiles("many"), false)
	}
	p.waitWarm(2)
	many := concurrentGets(t, get, 20, func(i int) string { return fmt.Sprintf("many%d.localhost", i) }, gw)
	rows = append(rows, benchRow{name: "burst: 20 different cold apps at once", d: many, target: "all answered"})

	// Warm hop at concurrency 1: through the gateway, through nginx (the
	// same hop done by a proxy people trust), through socat and straight to
	// the runner. Each path gets blocks of back-to-back requests, one at a
	// time as from wrk -c1, and the paths take turns block by block, so
	// that all see the same machine.
	app0 := p.runner(t, "cold0")
	addr := app0.Addr
	runnerAddr = addr
	paths := []hopPath{{name: "gateway", addr: gw, row: "warm GET via gateway, concurrency 1", target: "adds <= 100us p50, <= 300us p99"}}
	ngx, ngxPid := "", 0
	if _, err := exec.LookPath("nginx"); err == nil {
		ngx, ngxPid = startNginx(t, addr)
		paths = append(paths, hopPath{name: "nginx", addr: ngx, row: "warm GET via nginx, concurrency 1", target: "(baseline for the gateway's hop)"})
	}
	// socat copies bytes and does nothing else: what any proxy's extra
	// connection costs on this machine.
	if _, err := exec.LookPath("socat"); err == nil {
		paths = append(paths, hopPath{name: "socat", addr: startSocat(t, addr),
			row: "warm GET via socat (a byte relay), concurrency 1", target: "(the floor of any proxy's hop)"})
	}
	paths = append(paths, hopPath{name: "direct", addr: addr})
	hopGet := func(target string) time.Duration {
		d, _ := get("cold0.localhost", target, "/")
		return d
	}
	const hopBlock = 50
	measureHops(paths, hopGet, hopBlock, 0, 6, 60)
	// The same paths one request each in turn: each proxy has then been
	// idle through the other paths' requests, while the runner has just
	// answered one; it is printed, not the target's figure.
	turns := untimed(paths)
	measureHops(turns, hopGet, 1, 0, 300, 3000)
	// And each request after every process on the way has idled: what a
	// visitor's click meets.
	const hopIdle = 2 * time.Millisecond
	idle := untimed(paths)
	measureHops(idle, hopGet, 1, hopIdle, 20, 500)
	direct := paths[len(paths)-1]
	for _, h := range paths[:len(paths)-1] {
		rows = append(rows, benchRow{name: h.row, d: h.d, base: direct.d, baseName: "direct to the runner", target: h.target})
	}
	hopLine := fmt.Sprintf("warm hop over direct, concurrency 1, blocks of %d back-to-back requests per path in turn: %s", hopBlock, hopsAdded(paths))
	hopLine += "\n  one request per path in turn (each proxy idle through the others' requests, the runner not): " + hopsAdded(turns)
	hopLine += fmt.Sprintf("\n  one request per path in turn, each after %s idle (every process on the way idle): %s", hopIdle, hopsAdded(idle))

	// Deploy RPC -> new version serving.
	var redeploy, answered []time.Duration
	stages = map[v1.DeployStage][]time.Duration{}
	for i := range 15 {
		p.waitWarm(2)
		want := fmt.Sprintf("v%d", i)
		rpc := deploy("cold1", want)
		first, body := get("cold1.localhost", gw, "/")
		if !strings.Contains(body, want) {
			t.Fatalf("after deploy %s got %s", want, body)
		}
		redeploy = append(redeploy, rpc+first)
		answered = append(answered, first)
	}
	rows = append(rows, benchRow{name: "deploy RPC -> new version answers", d: redeploy, target: "p50 <= 250ms"})
	// A new app's first deploy: the warm stage starts its runner, so its
	// first request is a warm one.
	var fresh, freshFirst []time.Duration
	for i := range 10 {
		p.waitWarm(2)
		name := fmt.Sprintf("fresh%d", i)
		rpc := deploy(name, name)
		first, _ := get(name+".localhost", gw, "/")
		fresh = append(fresh, rpc+first)
		freshFirst = append(freshFirst, first)
	}
	rows = append(rows, benchRow{name: "deploy RPC of a new app (warmed) -> it answers", d: fresh, target: "p50 <= 250ms"})

	fmt.Printf("\n%-62s %9s %9s %9s   %-26s %9s %9s %7s   %s\n", "figure", "p50", "p99", "max", "baseline", "p50", "p99", "ratio", "target")
	for _, r := range rows {
		r.print()
	}

	fmt.Printf("\ncold start phases (p50 of %d, as recorded by the pool): %s\n", coldN, phases)
	fmt.Println(hopLine)
	fmt.Printf("deploy -> serving (p50 of %d redeploys of an app in use, then %d new apps): %s, then the first request (the runner the deploy warmed) %s; of a new app %s\n",
		len(redeploy), len(fresh), deployStages(stages), p50(answered), p50(freshFirst))

	// Throughput at concurrency 64: gateway vs nginx vs direct, same runner,
	// in alternating rounds so that none of the three always runs first or
	// last; the figure of each is its median round.
	if _, err := exec.LookPath("wrk"); err == nil {
		var direct, viaGW, viaNginx []float64
		// CPU each proxy spent per request, in its median round: on 2
		// cores the proxy's CPU is taken from the app's. And the app's
		// own (its Python), which sets the pace: what it spends per
		// request moves with the machine's noise, and with the proxy in
		// front only if that proxy made the app's work dearer.
		var cpuGW, cpuNginx, appGW, appNginx, appDirect, idleGW []time.Duration
		round := func(url string, pids func() []int) (rps float64, cpu, app time.Duration) {
			before, appBefore := cpuTime(pids()...), cpuTime(app0.Pids...)
			rps, n := wrk(t, url, "cold0.localhost")
			n = max(n, 1)
			return rps, (cpuTime(pids()...) - before) / time.Duration(n), (cpuTime(app0.Pids...) - appBefore) / time.Duration(n)
		}
		gwPid := func() []int { return []int{p.cmd.Process.Pid} }
		nginxPids := func() []int { return childPids(ngxPid) }
		// wrk opens TCP only: a runner on a Unix socket has no direct
		// rounds.
		directURL := ""
		if network, _ := appaddr.Network(addr); network == "tcp" {
			directURL = "http://" + addr + "/"
		}
		for range 5 {
			// The gateway process proxies nothing during the direct
			// rounds: what it spends then is its background work.
			if directURL != "" {
				rps, idle, app := round(directURL, gwPid)
				direct, appDirect, idleGW = append(direct, rps), append(appDirect, app), append(idleGW, idle)
			}
			rps, cpu, app := round("http://"+gw+"/", gwPid)
			viaGW, cpuGW, appGW = append(viaGW, rps), append(cpuGW, cpu), append(appGW, app)
			if ngx != "" {
				rps, cpu, app := round("http://"+ngx+"/", nginxPids)
				viaNginx, cpuNginx, appNginx = append(viaNginx, rps), append(cpuNginx, cpu), append(appNginx, app)
			}
		}
		rounds := fmt.Sprintf("  rounds, req/s: gateway %.0f, nginx %.0f", viaGW, viaNginx)
		if len(direct) > 0 {
			rounds += fmt.Sprintf(", direct %.0f", direct)
		}
		med := func(v []float64) float64 {
			if len(v) == 0 {
				return 0
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		directRPS := "not measured (wrk cannot open the runner's Unix socket)"
		if directURL != "" {
			directRPS = fmt.Sprintf("%.0f req/s", med(direct))
		}
		fmt.Printf("\nthroughput, wrk -t2 -c64 -d3s, 5 alternating rounds, same runner (median round): gateway %.0f req/s, nginx %.0f req/s (gateway/nginx %.2f), direct %s\n",
			med(viaGW), med(viaNginx), med(viaGW)/med(viaNginx), directRPS)
		fmt.Println(rounds)
		if ngx != "" {
			fmt.Printf("  CPU per request (median round): gateway process %s, nginx workers %s; the app's, via the gateway %s, via nginx %s",
				p50(cpuGW), p50(cpuNginx), p50(appGW), p50(appNginx))
			if directURL != "" {
				fmt.Printf(", direct %s (the gateway's background work, during the direct rounds: %s)", p50(appDirect), p50(idleGW))
			}
			fmt.Println()
		}
	} else {
		fmt.Println("\nthroughput: wrk not installed (make bench installs it)")
	}

	// Memory.
	warm, _ := p.runners(t)
	app := p.runner(t, "cold0")
	fmt.Printf("memory: idle warm runner %s (agent + python), specialized small app %s, gateway process after load %s\n",
		rss(warm[0].Pids...), rss(app.Pids...), rss(p.cmd.Process.Pid))
}

// deployStages is the median time at which deploys reached each stage.
func deployStages(stages map[v1.DeployStage][]time.Duration) string {
	var parts []string
	for _, st := range []v1.DeployStage{v1.DeployStage_DEPLOY_STAGE_VALIDATE, v1.DeployStage_DEPLOY_STAGE_STORE, v1.DeployStage_DEPLOY_STAGE_PUBLISH,
		v1.DeployStage_DEPLOY_STAGE_ROUTE, v1.DeployStage_DEPLOY_STAGE_WARM, v1.DeployStage_DEPLOY_STAGE_LIVE} {
		if d := stages[st]; len(d) > 0 {
			parts = append(parts, fmt.Sprintf("%s at %s", strings.ToLower(strings.TrimPrefix(st.String(), "DEPLOY_STAGE_")), p50(d)))
		}
	}
	return strings.Join(parts, ", ")
}

func p50(d []time.Duration) time.Duration {
	slices.Sort(d)
	return pct(d, 50)
}

// coldStartPhases is the median of each phase the pool recorded for the
// cold starts of apps cold0..cold{n-1}, read through ListColdStarts.
func coldStartPhases(t *testing.T, apps gofastapiv1connect.AppServiceClient, n int) string {
	var total, claim, fetch, verify, write, load, imp, first []time.Duration
	cached := 0
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	for i := range n {
		res, err := apps.ListColdStarts(context.Background(), connect.NewRequest(&v1.ListColdStartsRequest{IdOrName: fmt.Sprintf("cold%d", i), Limit: 1}))
		if err != nil {
			t.Fatal(err)
		}
		for _, cs := range res.Msg.GetColdStarts() {
			total = append(total, us(cs.GetTotalMicros()))
			claim = append(claim, us(cs.GetClaimMicros()))
			fetch = append(fetch, us(cs.GetFetchMicros()))
			verify = append(verify, us(cs.GetVerifyMicros()))
			write = append(write, us(cs.GetWriteMicros()))
			load = append(load, us(cs.GetLoadMicros()))
			imp = append(imp, us(cs.GetImportMicros()))
			first = append(first, us(cs.GetFirstByteMicros()))
			if cs.GetCached() {
				cached++
			}
		}
	}
	if len(total) == 0 {
		return "none recorded"
	}
	return fmt.Sprintf("claim to ready %s = claim %s + fetch %s + verify %s + write %s + load %s (the app's import %s) (+ rest), then first byte %s (the head of the app's answer, at the gateway); %d of %d starts took their files from the host's bundle cache (fetch and verify 0, write is the linking, or copying into a runner directory of its own)",
		p50(total), p50(claim), p50(fetch), p50(verify), p50(write), p50(load), p50(imp), p50(first), cached, len(total))
}

type benchRow struct {
	name, baseName, target string
	d, base                []time.Duration
}

func (r benchRow) print() {
	slices.Sort(r.d)
	fmt.Printf("%-62s %9s %9s %9s", r.name, pct(r.d, 50), pct(r.d, 99), r.d[len(r.d)-1].Round(time.Microsecond))
	if len(r.base) > 0 {
		slices.Sort(r.base)
		fmt.Printf("   %-26s %9s %9s %6.2fx", r.baseName, pct(r.base, 50), pct(r.base, 99), float64(pct(r.d, 50))/float64(pct(r.base, 50)))
	} else {
		fmt.Printf("   %-26s %9s %9s %7s", "-", "", "", "")
	}
	fmt.Printf("   %s\n", r.target)
}

// hopPath is one way to the bench's runner, its row in the table, and the
// times of the requests sent along it.
type hopPath struct {
	name, addr  string
	row, target string
	d           []time.Duration
}

// untimed returns the paths without their times.
func untimed(paths []hopPath) []hopPath {
	out := make([]hopPath, len(paths))
	for i, h := range paths {
		h.d = nil
		out[i] = h
	}
	return out
}

// measureHops sends requests along each path with get, block requests in
// a row per path, the paths taking turns, rounds times, each request after
// idle; the first warm rounds are not kept.
func measureHops(paths []hopPath, get func(addr string) time.Duration, block int, idle time.Duration, warm, rounds int) {
	for r := range warm + rounds {
		for i := range paths {
			for range block {
				if idle > 0 {
					time.Sleep(idle)
				}
				d := get(paths[i].addr)
				if r >= warm {
					paths[i].d = append(paths[i].d, d)
				}
			}
		}
	}
}

// hopsAdded says what each path but the last (direct) adds to the last's
// p50 and p99.
func hopsAdded(paths []hopPath) string {
	direct := paths[len(paths)-1].d
	slices.Sort(direct)
	var out []string
	for _, h := range paths[:len(paths)-1] {
		slices.Sort(h.d)
		out = append(out, fmt.Sprintf("%s %s p50, %s p99", h.name, added(pct(h.d, 50)-pct(direct, 50)), added(pct(h.d, 99)-pct(direct, 99))))
	}
	return strings.Join(out, ", ")
}

// added writes d with its sign: +61µs, -3µs.
func added(d time.Duration) string {
	if d < 0 {
		return d.String()
	}
	return "+" + d.String()
}

func pct(d []time.Duration, p int) time.Duration {
	return d[(len(d)-1)*p/100].Round(time.Microsecond)
}

func concurrentGets(t *testing.T, get func(host, addr, path string) (time.Duration, string), n int, host func(int) string, addr string) []time.Duration {
	out := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i], _ = get(host(i), addr, "/")
		})
	}
	close(start)
	wg.Wait()
	return out
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// benchHello is the smallest FastAPI app.
const benchHello = "from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get('/')\ndef root():\n    return {'message': 'hello'}\n"

// benchApp is a small app: 10 routes and a ~100 KB data file read at import.
func benchApp(greeting string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "import json\nfrom fastapi import FastAPI\n\napp = FastAPI()\nDATA = json.load(open('data.json'))\n\n@app.get('/')\ndef root():\n    return {'message': %q, 'items': len(DATA)}\n", greeting)
	for i := range 9 {
		fmt.Fprintf(&b, "\n@app.get('/r%d/{item}')\ndef r%d(item: int, q: str = ''):\n    return {'route': %d, 'item': item, 'q': q}\n", i, i, i)
	}
	return b.String()
}

func benchData() string {
	var b strings.Builder
	b.WriteString("[")
	for i := 0; b.Len() < 95<<10; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id": %d, "name": "item %d", "tags": ["a", "b", "c"]}`, i, i)
	}
	b.WriteString("]")
	return b.String()
}

type debugRunner struct {
	AppID string `json:"app_id"`
	Addr  string
	Pids  []int
}

func (p *platform) runners(t *testing.T) (warm, claimed []debugRunner) {
	res, err := http.Get("http://127.0.0.1:" + p.port + "/debug/pool")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var s struct{ Warm, Claimed []debugRunner }
	json.NewDecoder(res.Body).Decode(&s)
	return s.Warm, s.Claimed
}

// runner returns the runner serving app name (found through its logs' app id
// being unknown to the test, by asking the pool for the app's address).
func (p *platform) runner(t *testing.T, name string) debugRunner {
	out := p.mustCLI("apps")
	_ = out
	req, _ := http.NewRequest("POST", "http://127.0.0.1:"+p.port+"/gofastapi.v1.AppService/GetApp", strings.NewReader(`{"idOrName":"`+name+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.token(t))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var a struct{ App struct{ ID string } }
	json.NewDecoder(res.Body).Decode(&a)
	res.Body.Close()
	_, claimed := p.runners(t)
	for _, r := range claimed {
		if r.AppID == a.App.ID {
			return r
		}
	}
	t.Fatalf("no runner serves %s", name)
	return debugRunner{}
}

func (p *platform) token(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(p.home, ".config", "gofastapi", "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c credentials
	json.Unmarshal(b, &c)
	return c.Token
}

// waitWarm polls the pool until n runners are warm, so each cold start
// measures the path with a warm runner available.
func (p *platform) waitWarm(n int) {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if warm, _ := p.runners(p.t); len(warm) >= n {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling the pool's state between measurements
	}
	p.t.Fatalf("pool never had %d warm runners", n)
}

// uvicornColdStart starts the app with a fresh `python3 -m uvicorn` and
// returns the time until its first full response.
func uvicornColdStart(t *testing.T, dir, module string) time.Duration {
	port := freePort()
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
		time.Sleep(time.Millisecond) // polling a port: the baseline's own readiness
	}
	t.Fatalf("uvicorn in %s never answered", dir)
	return 0
}

// wrk runs wrk against url with a Host header for 3 s and returns the
// requests per second and how many requests it made.
func wrk(t *testing.T, url, host string) (float64, int) {
	out, err := exec.Command("wrk", "-t2", "-c64", "-d3s", "-H", "Host: "+host, url).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	n := 0
	if m := regexp.MustCompile(`(\d+) requests in`).FindSubmatch(out); m != nil {
		n, _ = strconv.Atoi(string(m[1]))
	}
	return parseWrk(t, out), n
}

// cpuTime sums the CPU time (user and system, all threads) pids have
// used.
func cpuTime(pids ...int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		// utime and stime, in USER_HZ (100 on Linux).
		if f := procStat(pid); len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return time.Duration(ticks) * time.Second / 100
}

// childPids lists the processes whose parent is pid (nginx's workers).
func childPids(pid int) []int {
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		child, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if f := procStat(child); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// procStat returns the fields of /proc/PID/stat after the command's
// closing parenthesis, from the state (field 3 of proc(5)) on; nil if pid
// is gone.
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
}

// parseWrk returns the requests/second of wrk's output, failing on errors.
func parseWrk(t *testing.T, out []byte) float64 {
	m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("wrk output: %s", out)
	}
	if strings.Contains(string(out), "Non-2xx") {
		t.Fatalf("wrk saw errors: %s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// startNginx runs nginx as a reverse proxy to upstream with keep-alive,
// sending the app the same headers the gateway adds (X-Forwarded-For,
// -Proto and -Host, and a request id), so both hand the app the same work:
// the way one would put it in front of a single uvicorn.
func startNginx(t *testing.T, upstream string) (addr string, pid int) {
	dir := t.TempDir()
	addr = fmt.Sprintf("127.0.0.1:%d", freePort())
	// Its workers run as the gateway does (root, when the bench is): only
	// that user and the app's may open a runner's socket. (Not as root,
	// nginx ignores the user line.)
	conf := fmt.Sprintf(`daemon off;
user root;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  upstream runner { server %[2]s; keepalive 64; }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://runner;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Request-Id $request_id;
    }
  }
}
`, dir, upstream, addr)
	os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644)
	cmd := exec.Command("nginx", "-c", filepath.Join(dir, "nginx.conf"), "-p", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// TERM, not KILL: the master stops its workers, which a killed master
	// would leave running.
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	awaitListening(t, addr, "nginx")
	return addr, cmd.Process.Pid
}

// startSocat runs socat as a byte relay to upstream, a child process per
// connection, and returns its address.
func startSocat(t *testing.T, upstream string) string {
	port := freePort()
	to := "TCP:" + upstream + ",nodelay"
	if network, path := appaddr.Network(upstream); network == "unix" {
		to = "UNIX-CONNECT:" + path
	}
	cmd := exec.Command("socat", fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,nodelay", port), to)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	awaitListening(t, addr, "socat")
	return addr
}

// freePort returns a loopback TCP port that was free just now, for a
// server the bench starts.
func freePort() int {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// awaitListening waits, for up to 10 s, until addr accepts a connection;
// name says which server did not start.
func awaitListening(t *testing.T, addr, name string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("%s did not start", name)
}

// rss sums the resident set size of pids, from /proc.
func rss(pids ...int) string {
	total := 0
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
		if m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			total += n
		}
	}
	return fmt.Sprintf("%.1f MB", float64(total)/1024)
}
