package logstore

import (
	"context"
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
	msgs, err := s.rdb.XRevRangeN(ctx, key(appID), "+", "-", n).Result()
	if err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	lines := make([]Line, len(msgs))
	for i, m := range msgs {
		ns, _ := strconv.ParseInt(str(m.Values["t"]), 10, 64)
		lines[len(msgs)-1-i] = Line{Time: time.Unix(0, ns), Stream: str(m.Values["s"]), Text: str(m.Values["m"])}
	}
	return lines, nil
}

// Delete removes appID's log and cold start records.
func (s *Store) Delete(ctx context.Context, appID string) error {
	return s.rdb.Del(ctx, key(appID), coldKey(appID)).Err()
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
