package pool

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeBackend makes in-memory instances; it stands in for a real backend in
// the pool's own unit tests (the backends are tested against real runners).
type fakeBackend struct {
	started atomic.Int32
}

func (b *fakeBackend) Start(ctx context.Context) (Instance, error) {
	b.started.Add(1)
	return &fakeInstance{done: make(chan struct{})}, nil
}

type fakeInstance struct {
	once        sync.Once
	done        chan struct{}
	specialized atomic.Int32
	stopped     atomic.Bool
}

func (f *fakeInstance) AppAddr() string                               { return "127.0.0.1:1" }
func (f *fakeInstance) SetLog(func(t time.Time, stream, text string)) {}
func (f *fakeInstance) Done() <-chan struct{}                         { return f.done }
func (f *fakeInstance) ExitErr() error                                { return errors.New("exit status 1") }
func (f *fakeInstance) Stop(time.Duration)                            { f.stopped.Store(true); f.exit() }
func (f *fakeInstance) exit()                                         { f.once.Do(func() { close(f.done) }) }
func (f *fakeInstance) Specialize(ctx context.Context, req *v1.SpecializeRequest) (*v1.SpecializeResponse, error) {
	f.specialized.Add(1)
	if req.GetAppId() == "broken" {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("app failed to start: ZeroDivisionError: division by zero"))
	}
	return &v1.SpecializeResponse{AppAddr: "127.0.0.1:1"}, nil
}

type logRecorder struct {
	mu    sync.Mutex
	lines []string
	added chan struct{} // closed and replaced on every line
	cold  map[string][]*v1.ColdStart
}

func (l *logRecorder) coldStart(appID string, cs *v1.ColdStart) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cold == nil {
		l.cold = map[string][]*v1.ColdStart{}
	}
	l.cold[appID] = append(l.cold[appID], cs)
}

func (l *logRecorder) coldStarts(appID string) []*v1.ColdStart {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cold[appID]
}

func (l *logRecorder) log(appID string, t time.Time, stream, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, appID+" "+stream+" "+text)
	if l.added != nil {
		close(l.added)
	}
	l.added = make(chan struct{})
}

// wait blocks until a line containing sub was logged, or fails the test.
func (l *logRecorder) wait(t *testing.T, sub string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		if l.added == nil {
			l.added = make(chan struct{})
		}
		ch := l.added
		l.mu.Unlock()
		if l.has(sub) {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("no %q in %v", sub, l.lines)
		}
	}
}

func (l *logRecorder) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (l *logRecorder) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func newPool(t *testing.T, warm, max int, idle time.Duration) (*Pool, *fakeBackend, *logRecorder) {
	t.Helper()
	b, logs := &fakeBackend{}, &logRecorder{}
	p, err := New(Config{Backend: b, Warm: warm, Max: max, IdleTimeout: idle, StartTimeout: time.Minute,
		SpecializeTimeout: time.Minute, StopGrace: time.Second, Log: logs.log, ColdStart: logs.coldStart,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, b, logs
}

func waitWarm(t *testing.T, p *Pool, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitWarm(ctx, n); err != nil {
		t.Fatalf("WaitWarm(%d): %v; stats %+v", n, err, p.Stats())
	}
}

func TestClaimTakesWarmAndRefills(t *testing.T) {
	p, b, logs := newPool(t, 2, 10, time.Hour)
	waitWarm(t, p, 2)
	r, err := p.Claim(context.Background(), &v1.SpecializeRequest{AppId: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Addr() != "127.0.0.1:1" {
		t.Errorf("Addr = %q", r.Addr())
	}
	waitWarm(t, p, 2)
	if got := b.started.Load(); got != 3 {
		t.Errorf("backend started %d runners, want 3 (2 warm + 1 refill)", got)
	}
	if s := p.Stats(); s.Claimed != 1 || s.Total != 3 {
		t.Errorf("Stats = %+v, want 1 claimed of 3", s)
	}
	// The record waits for the first byte of the app's first answer, which
	// the caller reports; only the first report counts. Records are
	// reported in order: the record comes before the line.
	r.Answered(3 * time.Millisecond)
	r.Answered(time.Second)
	logs.wait(t, "a1 platform cold start")
	if cs := logs.coldStarts("a1"); len(cs) != 1 || cs[0].GetError() != "" || cs[0].GetTotalMicros() <= 0 || cs[0].GetFirstByteMicros() != 3000 {
		t.Errorf("cold start records = %v, want one successful record with first byte 3000 us", cs)
	}
	if !logs.has("first byte 3.0ms") {
		t.Errorf("log lines %q: want the cold start's with first byte 3.0ms", logs.snapshot())
	}
}

// TestColdStartWithoutRequest checks that a start nobody reports a first
// byte for (a start ahead of requests) is recorded when its runner stops,
// before the runner's own events.
func TestColdStartWithoutRequest(t *testing.T) {
	p, _, logs := newPool(t, 1, 5, time.Hour)
	r, err := p.Claim(context.Background(), &v1.SpecializeRequest{AppId: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	logs.wait(t, "a1 platform cold start")
	if cs := logs.coldStarts("a1"); len(cs) != 1 || cs[0].GetFirstByteMicros() != 0 {
		t.Errorf("cold start records = %v, want one without a first byte", cs)
	}
	if !logs.has("first byte none") {
		t.Errorf("log lines %q: want the cold start's without a first byte", logs.snapshot())
	}
	r.Answered(time.Millisecond) // too late: recorded already
	if cs := logs.coldStarts("a1"); len(cs) != 1 {
		t.Errorf("cold start records after a late Answered = %v, want still one", cs)
	}
}

func TestClaimAtCapacity(t *testing.T) {
	p, _, _ := newPool(t, 1, 2, time.Hour)
	for i := 0; i < 2; i++ {
		if _, err := p.Claim(context.Background(), &v1.SpecializeRequest{AppId: "a"}); err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
	}
	_, err := p.Claim(context.Background(), &v1.SpecializeRequest{AppId: "b"})
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("claim over Max: err = %v, want ResourceExhausted", err)
	}
}

func TestClaimStartFailureKeepsReason(t *testing.T) {
	p, _, logs := newPool(t, 1, 5, time.Hour)
	_, err := p.Claim(context.Background(), &v1.SpecializeRequest{AppId: "broken"})
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "ZeroDivisionError") {
		t.Fatalf("err = %v, want FailedPrecondition naming the exception", err)
	}
	logs.wait(t, "broken platform start failed")
	if cs := logs.coldStarts("broken"); len(cs) != 1 || !strings.Contains(cs[0].GetError(), "ZeroDivisionError") {
		t.Errorf("cold start records = %v, want one naming the error", cs)
	}
	waitForTotal(t, p, 1) // the failed runner is destroyed; one warm remains
}

func TestIdleRunnerIsReapedAndNeverReused(t *testing.T) {
	p, _, logs := newPool(t, 1, 5, 100*time.Millisecond)
	r, err := p.Claim(context.Background(), &v1.SpecializeRequest{AppId: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.inst.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("idle runner was not reaped")
	}
	select {
	case <-r.Done():
	default:
		t.Error("Done is open after the runner was reaped")
	}
	if !r.inst.(*fakeInstance).stopped.Load() {
		t.Error("reaped runner was not stopped")
	}
	logs.wait(t, "idle platform scaled to zero")
	waitWarm(t, p, 1)
	r2, err := p.Claim(context.Background(), &v1.SpecializeRequest{AppId: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if r2.inst == r.inst || r2.inst.(*fakeInstance).specialized.Load() != 1 {
		t.Error("a specialized runner was handed out again")
	}
}

func TestCrashIsRecorded(t *testing.T) {
	p, _, logs := newPool(t, 0, 5, time.Hour)
	r, err := p.Claim(context.Background(), &v1.SpecializeRequest{AppId: "crashy"})
	if err != nil {
		t.Fatal(err)
	}
	r.inst.(*fakeInstance).exit()
	waitForTotal(t, p, 0)
	logs.wait(t, "crashy platform crashed: exit status 1")
}

func waitForTotal(t *testing.T, p *Pool, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		p.mu.Lock()
		ok, ch := p.total == n, p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("total never became %d: %+v", n, p.Stats())
		}
	}
}

func TestModules(t *testing.T) {
	for n, want := range map[int32]string{0: "0 modules", 1: "1 module", 5: "5 modules"} {
		if got := modules(n); got != want {
			t.Errorf("modules(%d) = %q, want %q", n, got, want)
		}
	}
}
