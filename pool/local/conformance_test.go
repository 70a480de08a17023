package local

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gofastapi/gofastapi/pool"
	"github.com/gofastapi/gofastapi/pool/pooltest"
)

// TestConformance runs the pool suite that every backend passes.
func TestConformance(t *testing.T) {
	rdb, runnerURL := pooltest.StartRedis(t)
	pooltest.Run(t, pooltest.Harness{
		Redis: rdb,
		NewBackend: func(t *testing.T) pool.Backend {
			b, err := New(Config{
				Command: []string{os.Args[0], "runner"}, Python: "/usr/bin/python3",
				Dir: filepath.Join(t.TempDir(), "runners"), RedisURL: runnerURL, ReadyTimeout: 10 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.Close)
			return b
		},
		KnowsAddrEarly: true,
		Crash: func(t *testing.T, r pool.RunnerInfo) {
			if len(r.Pids) < 2 {
				t.Fatalf("runner %+v has no app pid", r)
			}
			if err := syscall.Kill(r.Pids[1], syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		},
	})
}
