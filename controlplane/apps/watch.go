package apps

import (
	"context"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/controlplane/logstore"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// heartbeat is how often a following stream with nothing new sends an
// empty message, so proxies and the edge's idle timeouts keep it open.
const heartbeat = 20 * time.Second

// WatchEvents implements AppService.WatchEvents.
func (s *Service) WatchEvents(ctx context.Context, req *connect.Request[v1.WatchEventsRequest], stream *connect.ServerStream[v1.WatchEventsResponse]) error {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return err
	}
	n := int64(req.Msg.GetLimit())
	if n <= 0 || n > 500 {
		n = 50
	}
	events, pos, err := s.cfg.Logs.Events(ctx, a.ID, n)
	if err != nil {
		return s.fail("read events", err)
	}
	for _, e := range events {
		if err := stream.Send(&v1.WatchEventsResponse{Event: e}); err != nil {
			return err
		}
	}
	if !req.Msg.GetFollow() {
		return nil
	}
	send, stop := beating(ctx, func(e *v1.Event) error { return stream.Send(&v1.WatchEventsResponse{Event: e}) })
	defer stop()
	if err := s.cfg.Logs.FollowEvents(ctx, a.ID, pos, send); err != nil {
		return s.fail("follow events", err)
	}
	return nil
}

// WatchLogs implements AppService.WatchLogs.
func (s *Service) WatchLogs(ctx context.Context, req *connect.Request[v1.WatchLogsRequest], stream *connect.ServerStream[v1.WatchLogsResponse]) error {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return err
	}
	n := int64(req.Msg.GetLimit())
	if n <= 0 || n > 10000 {
		n = 200
	}
	lines, pos, err := s.cfg.Logs.TailFrom(ctx, a.ID, n)
	if err != nil {
		return s.fail("read logs", err)
	}
	for _, l := range lines {
		if err := stream.Send(&v1.WatchLogsResponse{Line: lineProto(l)}); err != nil {
			return err
		}
	}
	if !req.Msg.GetFollow() {
		return nil
	}
	send, stop := beating(ctx, func(l *v1.LogLine) error { return stream.Send(&v1.WatchLogsResponse{Line: l}) })
	defer stop()
	if err := s.cfg.Logs.Follow(ctx, a.ID, pos, func(l logstore.Line) error { return send(lineProto(l)) }); err != nil {
		return s.fail("follow logs", err)
	}
	return nil
}

// beating wraps send so that, until ctx ends or stop is called, send(nil)
// goes out whenever nothing was sent for a heartbeat interval. The returned
// func and the heartbeats never call send at the same time, and none is
// sent once stop has returned.
func beating[T any](ctx context.Context, send func(*T) error) (wrapped func(*T) error, stop func()) {
	var mu sync.Mutex
	last := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(heartbeat / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				mu.Lock()
				if time.Since(last) >= heartbeat {
					send(nil)
					last = time.Now()
				}
				mu.Unlock()
			}
		}
	}()
	wrapped = func(v *T) error {
		mu.Lock()
		defer mu.Unlock()
		last = time.Now()
		return send(v)
	}
	return wrapped, func() { cancel(); <-done }
}

func lineProto(l logstore.Line) *v1.LogLine {
	return &v1.LogLine{Time: timestamppb.New(l.Time), Stream: l.Stream, Text: l.Text}
}
