package auth

import (
	"context"
	"net"
	"time"

	"github.com/gofastapi/gofastapi/controlplane/ratelimit"
)

// Limiter counts attempts under a key (controlplane/ratelimit over Redis).
type Limiter interface {
	Allow(ctx context.Context, key string, r ratelimit.Rate) (ok bool, retry time.Duration, err error)
}

// RateLimits are the sign-in rate limits: Login, Signup and
// ChangePassword attempts share them. A zero Rate does not limit.
type RateLimits struct {
	// PerAddress bounds attempts from one client address (an IPv6 client
	// counts by its /64, which one host usually has whole).
	PerAddress ratelimit.Rate
	// PerUser bounds attempts for one username, from anywhere.
	PerUser ratelimit.Rate
}

// checkRate counts one attempt from addr for username and is a *rateError
// when either limit is exceeded. Both are counted, so an address spraying
// many usernames is stopped by its own limit.
func (s *Service) checkRate(ctx context.Context, addr, username string) error {
	okAddr, retryAddr, err := s.cfg.Limiter.Allow(ctx, "auth:addr:"+addrKey(addr), s.cfg.Rates.PerAddress)
	if err != nil {
		s.cfg.Logger.Error("rate limit", "err", err)
		return errLimiterDown
	}
	okUser, retryUser, err := s.cfg.Limiter.Allow(ctx, "auth:user:"+username, s.cfg.Rates.PerUser)
	if err != nil {
		s.cfg.Logger.Error("rate limit", "err", err)
		return errLimiterDown
	}
	switch {
	case !okAddr:
		return &rateError{what: "from your address", retry: retryAddr}
	case !okUser:
		return &rateError{what: "for this username", retry: retryUser}
	}
	return nil
}

// addrKey is the part of addr that identifies one client.
func addrKey(addr string) string {
	ip := net.ParseIP(addr)
	if ip == nil || ip.To4() != nil {
		return addr
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
