package logstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Line is one log line.
type Line struct {
	Time   time.Time
	Stream string // stdout, stderr or platform
	Text   string
}

// Store appends and reads app logs.
type Store struct {
	rdb    redis.UniversalClient
	maxLen int64
}

// New returns a Store keeping at most maxLen lines per app.
func New(rdb redis.UniversalClient, maxLen int64) *Store { return &Store{rdb: rdb, maxLen: maxLen} }

func key(appID string) string { return "logs:" + appID }

// Append adds a line to appID's log.
func (s *Store) Append(ctx context.Context, appID string, l Line) error {
	return s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: key(appID),
		MaxLen: s.maxLen,
		Approx: true,
		Values: []string{"t", strconv.FormatInt(l.Time.UnixNano(), 10), "s", l.Stream, "m", l.Text},
	}).Err()
}

// Tail returns the last n lines of appID's log, oldest first.
func (s *Store) Tail(ctx context.Context, appID string, n int64) ([]Line, error) {
	lines, _, err := s.TailFrom(ctx, appID, n)
	return lines, err
}

// TailFrom is Tail that also returns the position after the last line, for
// Follow ("0" when the log is empty).
func (s *Store) TailFrom(ctx context.Context, appID string, n int64) ([]Line, string, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, key(appID), "+", "-", n).Result()
	if err != nil {
		return nil, "", fmt.Errorf("read logs: %w", err)
	}
	lines := make([]Line, len(msgs))
	for i, m := range msgs {
		lines[len(msgs)-1-i] = toLine(m)
	}
	pos := "0"
	if len(msgs) > 0 {
		pos = msgs[0].ID
	}
	return lines, pos, nil
}

func toLine(m redis.XMessage) Line {
	ns, _ := strconv.ParseInt(str(m.Values["t"]), 10, 64)
	return Line{Time: time.Unix(0, ns), Stream: str(m.Values["s"]), Text: str(m.Values["m"])}
}

// Follow calls f with each line appended to appID's log after position pos
// (from TailFrom), until ctx ends or f fails.
func (s *Store) Follow(ctx context.Context, appID, pos string, f func(Line) error) error {
	return s.follow(ctx, key(appID), pos, func(m redis.XMessage) error { return f(toLine(m)) })
}

// followWait is how long one blocking read waits before it checks ctx.
const followWait = 2 * time.Second

// follow reads stream key after pos with blocking reads, one message at a
// time to f, until ctx ends (then it returns nil) or f or Redis fails.
func (s *Store) follow(ctx context.Context, key, pos string, f func(redis.XMessage) error) error {
	for {
		res, err := s.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{key, pos}, Block: followWait, Count: 100}).Result()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return fmt.Errorf("follow %s: %w", key, err)
		}
		for _, st := range res {
			for _, m := range st.Messages {
				if err := f(m); err != nil {
					return err
				}
				pos = m.ID
			}
		}
	}
}

// Delete removes appID's log, events and cold start records.
func (s *Store) Delete(ctx context.Context, appID string) error {
	return s.rdb.Del(ctx, key(appID), coldKey(appID), eventKey(appID)).Err()
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
