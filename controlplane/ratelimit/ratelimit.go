package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Rate allows N events per Per. The zero Rate allows everything.
type Rate struct {
	N   int
	Per time.Duration
}

// ParseRate reads a rate written N/DURATION (20/1m, 5/30s) or 0.
func ParseRate(s string) (Rate, error) {
	if s == "0" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%w: got %q", ErrBadRate, s)
	}
	r := Rate{}
	var err error
	if r.N, err = strconv.Atoi(n); err != nil || r.N < 1 {
		return Rate{}, fmt.Errorf("%w: got %q", ErrBadRate, s)
	}
	if r.Per, err = time.ParseDuration(per); err != nil || r.Per < time.Second {
		return Rate{}, fmt.Errorf("%w (a window of at least 1s): got %q", ErrBadRate, s)
	}
	return r, nil
}

// String writes r as ParseRate reads it.
func (r Rate) String() string {
	if r.N == 0 {
		return "0"
	}
	per := r.Per.String()
	if strings.HasSuffix(per, "m0s") {
		per = strings.TrimSuffix(per, "0s") // 1m0s -> 1m
	}
	if strings.HasSuffix(per, "h0m") {
		per = strings.TrimSuffix(per, "0m") // 1h0m -> 1h
	}
	return fmt.Sprintf("%d/%s", r.N, per)
}

// Limiter counts events in Redis.
type Limiter struct{ rdb redis.UniversalClient }

// New returns a Limiter over rdb.
func New(rdb redis.UniversalClient) *Limiter { return &Limiter{rdb: rdb} }

// count increments the window's counter, starting the window (and its
// expiry) with the first event, and returns the count and the window's
// remaining milliseconds.
var count = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// Allow counts one event under key and reports whether it is within r.
// When it is not, retry is how long until the window ends and events are
// allowed again. Events over the limit are counted too, so hammering does
// not shorten the wait.
func (l *Limiter) Allow(ctx context.Context, key string, r Rate) (ok bool, retry time.Duration, err error) {
	if r.N == 0 {
		return true, 0, nil
	}
	res, err := count.Run(ctx, l.rdb, []string{Key(key)}, r.Per.Milliseconds()).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	if res[0] <= int64(r.N) {
		return true, 0, nil
	}
	return false, time.Duration(res[1]) * time.Millisecond, nil
}

// Key is the Redis key of key's counter: a hash, so no username or
// address is stored.
func Key(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "ratelimit:" + hex.EncodeToString(sum[:16])
}
