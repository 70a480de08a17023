package logstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// maxColdStarts is how many cold starts are kept per app.
const maxColdStarts = 100

func coldKey(appID string) string { return "coldstarts:" + appID }

// AppendColdStart records one cold start of appID, keeping the latest 100.
func (s *Store) AppendColdStart(ctx context.Context, appID string, cs *v1.ColdStart) error {
	b, err := proto.Marshal(cs)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, coldKey(appID), b)
		p.LTrim(ctx, coldKey(appID), 0, maxColdStarts-1)
		return nil
	})
	return err
}

// ColdStarts returns appID's latest n cold starts, newest first.
func (s *Store) ColdStarts(ctx context.Context, appID string, n int64) ([]*v1.ColdStart, error) {
	raw, err := s.rdb.LRange(ctx, coldKey(appID), 0, n-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read cold starts: %w", err)
	}
	out := make([]*v1.ColdStart, 0, len(raw))
	for _, r := range raw {
		var cs v1.ColdStart
		if err := proto.Unmarshal([]byte(r), &cs); err != nil {
			return nil, fmt.Errorf("decode cold start: %w", err)
		}
		out = append(out, &cs)
	}
	return out, nil
}
