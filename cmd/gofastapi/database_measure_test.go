package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// dbBenchApp hands out its PLATFORM_MONGO_URI: the database user and
// database the platform provisioned for its owner.
const dbBenchApp = `import os
from fastapi import FastAPI

app = FastAPI()

@app.get("/uri")
def uri():
    return {"uri": os.environ["PLATFORM_MONGO_URI"]}
`

// dbBenchScript times find-by-_id and insert with pymongo, through the
// platform's database front (argv[1], an app's PLATFORM_MONGO_URI) and
// straight to the store (argv[2]), alternating the two so that both see
// the same machine, and prints the durations as JSON.
const dbBenchScript = `import json, sys, time
from pymongo import MongoClient

front_uri, direct_uri, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
front = MongoClient(front_uri)
db = front.get_default_database().name
colls = {"front": front[db].bench, "direct": MongoClient(direct_uri)[db].bench}
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
json.dump(out, sys.stdout)
`

// TestMeasureDatabase is the database part of ` + "`make bench`" + `: the cost of
// the isolation layer (the wire front: SCRAM-authenticated connection,
// every command checked, quota and time limit) on a find by _id and an
// insert, with an app's credentials, beside the same operations sent
// straight to the store by the same client. The client is a Python process
// beside the platform, not the app: an app makes no Unix socket (see the
// runners' forbid_unix_sockets), and the store listens on one.
func TestMeasureDatabase(t *testing.T) {
	if os.Getenv("GOFASTAPI_MEASURE") == "" {
		t.Skip("set GOFASTAPI_MEASURE=1 (make bench)")
	}
	n := envInt("BENCH_DB_OPS", 2000)
	data := t.TempDir()
	p := startPlatform(t, data, t.TempDir(), "--warm", "1", "--log-level", "warn")
	token, _ := p.signup(t, "dbbench", "benchmark")
	p.deploy(t, token, "dbbench", dbBenchApp)
	code, body := p.get("dbbench", "/uri")
	var app struct{ URI string }
	if err := json.Unmarshal([]byte(body), &app); code != 200 || err != nil || app.URI == "" {
		t.Fatalf("GET dbbench/uri: %d %s (%v)", code, body, err)
	}
	direct := "mongodb://" + url.PathEscape(filepath.Join(data, "mongo.sock"))
	out, err := exec.Command("/usr/bin/python3", "-c", dbBenchScript, app.URI, direct, strconv.Itoa(n)).Output()
	if err != nil {
		t.Fatalf("the benchmark's client: %v", err)
	}
	var res map[string]map[string][]int64
	if err := json.Unmarshal(out, &res); err != nil {
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
		{name: fmt.Sprintf("platform db: find by _id, an app's user, %d ops", n), d: durations(res["front"]["find"]),
			base: durations(res["direct"]["find"]), baseName: "same client, store directly", target: "front adds <= 100us p50"},
		{name: fmt.Sprintf("platform db: insert, an app's user, %d ops", n), d: durations(res["front"]["insert"]),
			base: durations(res["direct"]["insert"]), baseName: "same client, store directly", target: "front adds <= 100us p50"},
	}
	fmt.Printf("\n%-62s %9s %9s %9s   %-26s %9s %9s %7s   %s\n", "figure", "p50", "p99", "max", "baseline", "p50", "p99", "ratio", "target")
	for _, r := range rows {
		r.print()
	}
}
