package runner

import (
	"context"
	"os"
	"path/filepath"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// warmUp does the agent's own part of a Specialize once, on a throwaway
// bundle, while Python starts: reading a bundle and its compiled modules
// from Redis as Specialize does (which also makes the pooled connection;
// the pipeline's first use cost a cold start 0.5 ms), decoding and
// verifying a bundle, writing its files into a scratch directory beside
// the app's (removed afterwards) and encoding a response. A fresh agent
// otherwise pays for these code paths' first use (page faults on the
// binary's code, the runtime's first allocations of each size) inside its
// one cold start.
// Failures are ignored: nothing depends on the practice run, and
// Specialize reports the store's real state when it matters.
func warmUp(ctx context.Context, rdb *redis.Client, workdir string, runAs *RunAs) {
	files := []bundle.File{
		{Name: "app.py", Content: []byte("from fastapi import FastAPI\n\napp = FastAPI()\n")},
		{Name: "pkg/data.json", Content: []byte(`{"warm": true}`)},
	}
	version := bundle.Hash(files)
	// No such bundle: the answer is redis.Nil, and the connection is made
	// and pooled (a runner's Redis user may read bundle keys and no more).
	_, _, _ = FetchBundle(ctx, rdb, version, true)
	if data, err := bundle.Encode(files); err == nil {
		_, _ = bundle.Decode(data, version)
	}
	dir := filepath.Join(workdir, "warm")
	if writeFiles(dir, files) == nil {
		_ = runAs.give(dir)
	}
	_ = os.RemoveAll(dir)
	_, _ = proto.Marshal(&v1.SpecializeResponse{AppAddr: "127.0.0.1:1", FetchMicros: 1, VerifyMicros: 1,
		WriteMicros: 1, LoadMicros: 1, ImportMicros: 1})
}
