package telemetry

import (
	"context"
	"errors"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/event"
)

// StoreErrors counts failed Redis and MongoDB commands.
type StoreErrors struct {
	redis, mongo *prometheus.CounterVec
}

// NewStoreErrors registers the store error counters in reg.
func NewStoreErrors(reg prometheus.Registerer) (*StoreErrors, error) {
	s := &StoreErrors{
		redis: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gofastapi", Subsystem: "redis", Name: "errors_total",
			Help: "Redis commands that failed (a missing key is not a failure), by command.",
		}, []string{"command"}),
		mongo: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gofastapi", Subsystem: "mongodb", Name: "errors_total",
			Help: "MongoDB commands of the platform database that failed, by command.",
		}, []string{"command"}),
	}
	for _, c := range []prometheus.Collector{s.redis, s.mongo} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// RedisHook returns a go-redis hook that counts failed commands; add it
// with Client.AddHook.
func (s *StoreErrors) RedisHook() redis.Hook { return redisHook{s.redis} }

type redisHook struct{ errs *prometheus.CounterVec }

var _ redis.Hook = redisHook{}

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			h.errs.WithLabelValues("dial").Inc()
		}
		return c, err
	}
}

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if failed(err) {
			h.errs.WithLabelValues(cmd.Name()).Inc()
		}
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if failed(c.Err()) {
				h.errs.WithLabelValues(c.Name()).Inc()
			}
		}
		return err
	}
}

// failed reports whether err is a failure, not redis.Nil (no such key).
func failed(err error) bool { return err != nil && !errors.Is(err, redis.Nil) }

// MongoMonitor returns a command monitor that counts failed commands; set
// it with options.Client().SetMonitor.
func (s *StoreErrors) MongoMonitor() *event.CommandMonitor {
	return &event.CommandMonitor{
		Failed: func(_ context.Context, e *event.CommandFailedEvent) {
			s.mongo.WithLabelValues(e.CommandName).Inc()
		},
	}
}
