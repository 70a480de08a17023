package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// dbBenchApp times find-by-_id and insert from inside a deployed app, with
// pymongo, through the platform's database front (PLATFORM_MONGO_URI) and
// straight to the store, alternating the two so that both see the same
// machine.
const dbBenchApp = `import os, time
from fastapi import FastAPI
from pymongo import MongoClient

app = FastAPI()
front = MongoClient(os.environ["PLATFORM_MONGO_URI"])

@app.get("/bench")
def bench(direct: str, n: int = 2000):
    db = front.get_default_database().name
    colls = {"front": front[db].bench, "direct": MongoClient(direct)[db].bench}
    out = {k: {"insert": [], "find": []} for k in colls}
    for k, c in colls.items():
        c.insert_one({"_id": "warm-" + k})
        c.find_one({"_id": "warm-" + k})
    for op in ("insert", "find"):
        for i in range(n):
            for k, c in colls.items():
                t0 = time.perf_counter_ns()
                if op == "insert":
                    c.insert_one({"_id": f"{k}-{i}", "v": i, "s": "some text"})
                else:
                    c.find_one({"_id": f"{k}-{i}"})
                out[k][op].append(time.perf_counter_ns() - t0)
    return out
`

// TestMeasureDatabase is the database part of ` + "`make bench`" + `: the cost of
// the isolation layer (the wire front: SCRAM-authenticated connection,
// every command checked, quota and time limit) on a find by _id and an
// insert, from a deployed app, beside the same operations sent straight to
// the store. Runners keep the platform's user here (--runner-uids off), so
// that the app may reach the store's socket for the baseline.
func TestMeasureDatabase(t *testing.T) {
	if os.Getenv("GOFASTAPI_MEASURE") == "" {
		t.Skip("set GOFASTAPI_MEASURE=1 (make bench)")
	}
	n := envInt("BENCH_DB_OPS", 2000)
	data := t.TempDir()
	p := startPlatform(t, data, t.TempDir(), "--warm", "1", "--runner-uids", "off", "--log-level", "warn")
	token, _ := p.signup(t, "dbbench", "benchmark")
	p.deploy(t, token, "dbbench", dbBenchApp)
	direct := "mongodb://" + url.PathEscape(filepath.Join(data, "mongo.sock"))
	code, body := p.get("dbbench", fmt.Sprintf("/bench?n=%d&direct=%s", n, url.QueryEscape(direct)))
	if code != 200 {
		t.Fatalf("bench: %d %s", code, body)
	}
	var res map[string]map[string][]int64
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	durations := func(ns []int64) []time.Duration {
		d := make([]time.Duration, len(ns))
		for i, v := range ns {
			d[i] = time.Duration(v)
		}
		return d
	}
	rows := []benchRow{
		{name: fmt.Sprintf("platform db: find by _id from an app, %d ops", n), d: durations(res["front"]["find"]),
			base: durations(res["direct"]["find"]), baseName: "same app, store directly", target: "front adds <= 100us p50"},
		{name: fmt.Sprintf("platform db: insert from an app, %d ops", n), d: durations(res["front"]["insert"]),
			base: durations(res["direct"]["insert"]), baseName: "same app, store directly", target: "front adds <= 100us p50"},
	}
	fmt.Printf("\n%-62s %9s %9s %9s   %-26s %9s %9s %7s   %s\n", "figure", "p50", "p99", "max", "baseline", "p50", "p99", "ratio", "target")
	for _, r := range rows {
		r.print()
	}
}
