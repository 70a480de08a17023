package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/gofastapi/gofastapi/pool"
)

// LeaderConfig configures the election of the active pool manager.
type LeaderConfig struct {
	Client    kubernetes.Interface
	Namespace string
	// Lease names the coordination.k8s.io Lease the candidates share.
	Lease string
	// Identity names this candidate (its pod name).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's
	// leaderelection timings; zero means 15s, 10s and 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Logger                                    *slog.Logger
}

// RunLeader takes part in the election until ctx ends: each time this
// candidate becomes the leader it calls lead with a context that ends when
// the leadership does, and waits for lead to return before it stands again.
func RunLeader(ctx context.Context, cfg LeaderConfig, lead func(ctx context.Context)) error {
	if cfg.Client == nil || cfg.Namespace == "" || cfg.Lease == "" || cfg.Identity == "" || cfg.Logger == nil {
		return errors.New("kube: LeaderConfig needs Client, Namespace, Lease, Identity and Logger")
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Lease},
		Client:     cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   cfg.LeaseDuration,
			RenewDeadline:   cfg.RenewDeadline,
			RetryPeriod:     cfg.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            cfg.Lease,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					cfg.Logger.Info("leading the pool", "identity", cfg.Identity)
					lead(ctx)
				},
				OnStoppedLeading: func() { cfg.Logger.Info("no longer leading the pool", "identity", cfg.Identity) },
			},
		})
		if err != nil {
			return fmt.Errorf("kube: leader election: %w", err)
		}
		le.Run(ctx) // returns when the leadership or ctx ends
	}
	return nil
}

// ManagerConfig configures a pool manager on Kubernetes.
type ManagerConfig struct {
	Backend Config
	Leader  LeaderConfig
	// Pool configures the pool; its Backend is set by RunManager.
	Pool pool.Config
	// Serve is called with the pool while this manager leads, and with nil
	// when it stops leading.
	Serve func(*pool.Pool)
}

// RunManager runs a pool manager until ctx ends: while it holds the Lease
// it runs a pool of runner pods, rebuilt from the pods that exist, and
// hands it to cfg.Serve. On losing the Lease it detaches from its pods,
// which its successor takes over.
func RunManager(ctx context.Context, cfg ManagerConfig) error {
	return RunLeader(ctx, cfg.Leader, func(ctx context.Context) {
		b, err := New(ctx, cfg.Backend)
		if err != nil {
			cfg.Leader.Logger.Error("start the kube backend", "err", err)
			return
		}
		defer b.Close()
		pc := cfg.Pool
		pc.Backend = b
		p, err := pool.New(pc)
		if err != nil {
			cfg.Leader.Logger.Error("start the pool", "err", err)
			return
		}
		cfg.Serve(p)
		<-ctx.Done()
		cfg.Serve(nil)
		b.Detach()
		p.Close()
	})
}
