package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/logstore"
	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
	"github.com/gofastapi/gofastapi/proto/latency"
)

// Store is the platform data the service reads.
type Store interface {
	OwnedApp(ctx context.Context, ownerID, idOrName string) (*store.App, error)
	AppByIDOrName(ctx context.Context, idOrName string) (*store.App, error)
	MetricWindows(ctx context.Context, appID string, since time.Time) ([]*v1.MetricsWindow, error)
	RequestErrors(ctx context.Context, appID string, n int64) ([]*v1.RequestError, error)
	CountServerErrors(ctx context.Context, appID string, since time.Time) (int64, error)
	HealthReport(ctx context.Context, appID string) (*v1.HealthReport, error)
}

// Logs are the apps' logs and cold start records.
type Logs interface {
	Tail(ctx context.Context, appID string, n int64) ([]logstore.Line, error)
	ColdStarts(ctx context.Context, appID string, n int64) ([]*v1.ColdStart, error)
}

// Config configures a Service.
type Config struct {
	Store  Store
	Logs   Logs
	Logger *slog.Logger
}

// Validate reports whether c is complete.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("observe: Config.Store is nil")
	case c.Logs == nil:
		return errors.New("observe: Config.Logs is nil")
	case c.Logger == nil:
		return errors.New("observe: Config.Logger is nil")
	}
	return nil
}

// Service implements gofastapiv1connect.MetricsServiceHandler.
type Service struct{ cfg Config }

var _ gofastapiv1connect.MetricsServiceHandler = (*Service)(nil)

// NewService returns a MetricsService.
func NewService(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg}, nil
}

const (
	// day is the period of the totals.
	day = 24 * time.Hour
	// recent is the period health looks back on.
	recent = 5 * time.Minute
	// logLines is how much of an app's log is searched for tracebacks.
	logLines = 2000
)

// GetAppStats implements MetricsService.GetAppStats.
func (s *Service) GetAppStats(ctx context.Context, req *connect.Request[v1.GetAppStatsRequest]) (*connect.Response[v1.GetAppStatsResponse], error) {
	a, err := s.app(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	minutes := int(req.Msg.GetMinutes())
	if minutes <= 0 {
		minutes = 60
	}
	minutes = min(minutes, 24*60)
	now := time.Now()
	ws, err := s.cfg.Store.MetricWindows(ctx, a.ID, now.Add(-day))
	if err != nil {
		return nil, s.fail("metric windows", err)
	}
	out := &v1.GetAppStatsResponse{Last_24H: summarize(ws)}
	from := now.Truncate(time.Minute).Add(-time.Duration(minutes-1) * time.Minute)
	for _, w := range ws {
		if !w.GetMinute().AsTime().Before(from) {
			out.Minutes = append(out.Minutes, &v1.MinuteStats{Minute: w.GetMinute(), Stats: summarize([]*v1.MetricsWindow{w})})
		}
	}
	cs, err := s.cfg.Logs.ColdStarts(ctx, a.ID, 100)
	if err != nil {
		return nil, s.fail("cold starts", err)
	}
	for i, c := range cs {
		if c.GetTime().AsTime().After(now.Add(-day)) {
			out.ColdStarts_24H++
		}
		if i < 10 {
			out.RecentColdStarts = append(out.RecentColdStarts, c)
		}
	}
	return connect.NewResponse(out), nil
}

// summarize adds windows up into one Stats.
func summarize(ws []*v1.MetricsWindow) *v1.Stats {
	st := &v1.Stats{}
	var sum int64
	buckets := make([]int64, latency.NumBuckets)
	for _, w := range ws {
		st.Requests += w.GetRequests()
		st.Status_2Xx += w.GetStatus_2Xx()
		st.Status_4Xx += w.GetStatus_4Xx()
		st.Status_5Xx += w.GetStatus_5Xx()
		sum += w.GetLatencySumMicros()
		for i, c := range w.GetLatencyBuckets() {
			if i >= 0 && int(i) < len(buckets) {
				buckets[i] += c
			}
		}
	}
	if st.Requests > 0 {
		st.AvgMs = float64(sum) / float64(st.Requests) / 1000
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	st.P50Ms = ms(latency.Quantile(buckets, 0.50))
	st.P95Ms = ms(latency.Quantile(buckets, 0.95))
	st.P99Ms = ms(latency.Quantile(buckets, 0.99))
	return st
}

// ListErrors implements MetricsService.ListErrors.
func (s *Service) ListErrors(ctx context.Context, req *connect.Request[v1.ListErrorsRequest]) (*connect.Response[v1.ListErrorsResponse], error) {
	a, err := s.app(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	n := int64(req.Msg.GetLimit())
	if n <= 0 {
		n = 50
	}
	n = min(n, 500)
	es, err := s.cfg.Store.RequestErrors(ctx, a.ID, n)
	if err != nil {
		return nil, s.fail("request errors", err)
	}
	var lines []logstore.Line
	for _, e := range es {
		if e.GetClass() != v1.ErrorClass_ERROR_CLASS_SERVER || e.GetRequestId() == "" {
			continue
		}
		if lines == nil {
			if lines, err = s.cfg.Logs.Tail(ctx, a.ID, logLines); err != nil {
				return nil, s.fail("logs", err)
			}
		}
		e.Traceback = traceback(lines, e.GetRequestId())
	}
	return connect.NewResponse(&v1.ListErrorsResponse{Errors: es}), nil
}

// GetHealth implements MetricsService.GetHealth.
func (s *Service) GetHealth(ctx context.Context, req *connect.Request[v1.GetHealthRequest]) (*connect.Response[v1.GetHealthResponse], error) {
	a, err := s.app(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	now := time.Now()
	in := healthInput{now: now, deployed: a.DeployedVersion != "", deployedAt: a.DeployedAt}
	if in.report, err = s.cfg.Store.HealthReport(ctx, a.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, s.fail("health report", err)
	}
	since := now.Add(-recent)
	if a.DeployedAt.After(since) {
		since = a.DeployedAt
	}
	if in.errors5m, err = s.cfg.Store.CountServerErrors(ctx, a.ID, since); err != nil {
		return nil, s.fail("count errors", err)
	}
	ws, err := s.cfg.Store.MetricWindows(ctx, a.ID, since.Truncate(time.Minute))
	if err != nil {
		return nil, s.fail("metric windows", err)
	}
	for _, w := range ws {
		in.requests5m += w.GetRequests()
	}
	cs, err := s.cfg.Logs.ColdStarts(ctx, a.ID, 1)
	if err != nil {
		return nil, s.fail("cold starts", err)
	}
	if len(cs) > 0 {
		in.lastStart = cs[0]
	}
	status, reason := assess(in)
	return connect.NewResponse(&v1.GetHealthResponse{Status: status, Reason: reason, Report: in.report,
		ServerErrors_5M: in.errors5m, Requests_5M: in.requests5m}), nil
}

// app returns the app the caller names, if the caller owns it or is an
// admin; otherwise NotFound, so callers cannot learn of others' apps.
func (s *Service) app(ctx context.Context, idOrName string) (*store.App, error) {
	c, ok := auth.CallerFrom(ctx)
	if !ok {
		return nil, connect.NewError(connect.CodeUnauthenticated, errNotLogged)
	}
	var a *store.App
	var err error
	if c.User.Admin {
		a, err = s.cfg.Store.AppByIDOrName(ctx, idOrName)
	} else {
		a, err = s.cfg.Store.OwnedApp(ctx, c.User.ID, idOrName)
	}
	if errors.Is(err, store.ErrNotFound) && c.User.Admin {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("there is no app named %q", idOrName))
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("you have no app named %q: check the name (`gofastapi apps` lists yours)", idOrName))
	}
	if err != nil {
		return nil, s.fail("get app", err)
	}
	return a, nil
}

// fail logs errors that become Internal, then maps err for the client.
func (s *Service) fail(op string, err error) error {
	ce := connectError(err)
	if connect.CodeOf(ce) == connect.CodeInternal {
		s.cfg.Logger.Error(op, "err", err)
	}
	return ce
}
