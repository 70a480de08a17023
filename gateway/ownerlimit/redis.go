package ownerlimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyPrefix is the prefix of the shared buckets' keys; the owner's id
// follows.
const keyPrefix = "owner-requests:"

// expiry is how long a bucket no one spends from is kept. It must be at
// least a minute: a bucket refills in one.
const expiry = 2 * time.Minute

// spend refills the bucket KEYS[1] of ARGV[1] tokens a minute by Redis's
// clock, takes ARGV[2] from it, never owing more than a minute's worth,
// and returns what is left as a string (a number would be cut to an
// integer). ARGV[3] is the expiry in milliseconds. ARGV[4] names the
// spender and ARGV[5] numbers the spend: a spend numbered no higher than
// the spender's last one here was taken before, and takes nothing again.
// Taking nothing from a bucket that does not exist does not make it.
var spend = redis.NewScript(`
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size = tonumber(ARGV[1])
local take = tonumber(ARGV[2])
local seqField = 'seq:' .. ARGV[4]
local seq = tonumber(ARGV[5])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at', seqField)
local tokens, at, last = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
if last and seq <= last then
  take = 0 -- sent again: taken before
end
if not tokens or not at then
  if take == 0 then
    return tostring(size) -- a full bucket, read: not written
  end
  tokens, at = size, now
end
if now > at then
  tokens = tokens + (now - at) * size / 60000
  at = now
end
tokens = math.max(math.min(tokens, size) - take, -size)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', at)
if not last or seq > last then
  redis.call('HSET', KEYS[1], seqField, seq)
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return tostring(tokens)
`)

// Redis is Shared over Redis: each owner's bucket is a hash of its tokens,
// when they were counted, and the last spend of each spender. It is safe
// for concurrent use; one Limits spends through it.
type Redis struct {
	rdb redis.UniversalClient
	// id names this spender in the buckets: random, so that a restarted
	// gateway's spends, numbered from 1 again, are not taken for ones
	// seen before.
	id string
}

// NewRedis returns Shared buckets kept in rdb.
func NewRedis(rdb redis.UniversalClient) *Redis {
	var b [8]byte
	rand.Read(b[:])
	return &Redis{rdb: rdb, id: hex.EncodeToString(b[:])}
}

// Spend implements Shared: one pipeline of one script run per spend. Runs
// refused because Redis had forgotten the script (a restart) are sent
// again once it is loaded; and a spend sent again after a failure is
// taken once (its Seq), so nothing is spent twice.
func (r *Redis) Spend(ctx context.Context, spends []Spend) ([]float64, error) {
	cmds := r.run(ctx, spends, nil)
	var again []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		if err := spend.Load(ctx, r.rdb).Err(); err != nil {
			return nil, fmt.Errorf("shared request counts: loading the script: %w", err)
		}
		for j, cmd := range r.run(ctx, spends, again) {
			cmds[again[j]] = cmd
		}
	}
	left := make([]float64, len(cmds))
	for i, cmd := range cmds {
		s, err := cmd.Text()
		if err == nil {
			left[i], err = strconv.ParseFloat(s, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("shared request counts: owner %s: %w", spends[i].Owner, err)
		}
	}
	return left, nil
}

// run sends the script runs of spends (of those at the indices only, if
// any are given) in one pipeline; each command holds its own result or
// error.
func (r *Redis) run(ctx context.Context, spends []Spend, only []int) []*redis.Cmd {
	if only == nil {
		only = make([]int, len(spends))
		for i := range only {
			only[i] = i
		}
	}
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(only))
	for j, i := range only {
		s := spends[i]
		cmds[j] = spend.EvalSha(ctx, pipe, []string{Key(s.Owner)}, s.PerMinute, s.N, expiry.Milliseconds(), r.id, s.Seq)
	}
	pipe.Exec(ctx) // each command keeps its own error
	return cmds
}

// DeleteUserData deletes the shared bucket of a deleted user, for the
// platform's user-deletion cascade. It holds only a count; if a gateway
// spends from it after the deletion (what it let through in the last
// sync interval), it is made again and expires two minutes later.
func (r *Redis) DeleteUserData(ctx context.Context, userID string) (map[string]int64, error) {
	n, err := r.rdb.Del(ctx, Key(userID)).Result()
	if err != nil {
		return nil, fmt.Errorf("shared request counts: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	return map[string]int64{"request counts": n}, nil
}

// Key is the Redis key of owner's shared bucket.
func Key(owner string) string { return keyPrefix + owner }
