package logstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// maxEvents is about how many lifecycle events are kept per app.
const maxEvents = 500

func eventKey(appID string) string { return "events:" + appID }

// AppendEvent adds a lifecycle event to appID's event stream.
func (s *Store) AppendEvent(ctx context.Context, appID string, e *v1.Event) error {
	b, err := proto.Marshal(e)
	if err != nil {
		return err
	}
	return s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: eventKey(appID), MaxLen: maxEvents, Approx: true, Values: []any{"e", b}}).Err()
}

// Events returns appID's last n events, oldest first, and the position
// after the last one, for FollowEvents.
func (s *Store) Events(ctx context.Context, appID string, n int64) ([]*v1.Event, string, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, eventKey(appID), "+", "-", n).Result()
	if err != nil {
		return nil, "", fmt.Errorf("read events: %w", err)
	}
	out := make([]*v1.Event, 0, len(msgs))
	for i := len(msgs) - 1; i >= 0; i-- {
		e, err := toEvent(msgs[i])
		if err != nil {
			return nil, "", err
		}
		out = append(out, e)
	}
	pos := "0"
	if len(msgs) > 0 {
		pos = msgs[0].ID
	}
	return out, pos, nil
}

// FollowEvents calls f with each event of appID appended after pos, until
// ctx ends or f fails.
func (s *Store) FollowEvents(ctx context.Context, appID, pos string, f func(*v1.Event) error) error {
	return s.follow(ctx, eventKey(appID), pos, func(m redis.XMessage) error {
		e, err := toEvent(m)
		if err != nil {
			return err
		}
		return f(e)
	})
}

func toEvent(m redis.XMessage) (*v1.Event, error) {
	var e v1.Event
	if err := proto.Unmarshal([]byte(str(m.Values["e"])), &e); err != nil {
		return nil, fmt.Errorf("decode event %s: %w", m.ID, err)
	}
	return &e, nil
}
