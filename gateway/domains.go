package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// domainChangedPrefix starts what Invalidate is given when a custom
// domain changes: DomainChanged(host). Slugs have no colon.
const domainChangedPrefix = "domain:"

// DomainChanged is what Gateway.Invalidate takes when custom domain host
// changed (the control plane publishes the same string).
func DomainChanged(host string) string { return domainChangedPrefix + host }

const (
	// unknownHostTTL is how long a host that serves no app is remembered
	// as such: requests with made-up hosts do not each cost a look-up,
	// and a domain added meanwhile is announced anyway.
	unknownHostTTL = 10 * time.Second
	// maxDomainEntries bounds the cache; past it, it starts over.
	maxDomainEntries = 10000
)

// domainCache remembers which app each custom domain serves, and for a
// while which hosts serve none. Concurrent look-ups of one host share one
// DomainSource call.
type domainCache struct {
	src     DomainSource
	timeout time.Duration

	mu      sync.RWMutex
	entries map[string]domainEntry
	gens    map[string]uint64 // as routeCache's
	flight  singleflight.Group
}

type domainEntry struct {
	slug    string    // "" for none
	expires time.Time // for "" only
}

func newDomainCache(src DomainSource, timeout time.Duration) *domainCache {
	return &domainCache{src: src, timeout: timeout, entries: map[string]domainEntry{}, gens: map[string]uint64{}}
}

// slug returns the slug of the app custom domain host serves, or "" if
// none.
func (c *domainCache) slug(base context.Context, host string) (string, error) {
	c.mu.RLock()
	e, ok := c.entries[host]
	c.mu.RUnlock()
	if ok && (e.slug != "" || time.Now().Before(e.expires)) {
		return e.slug, nil
	}
	v, err, _ := c.flight.Do(host, func() (any, error) { return c.fill(base, host) })
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (c *domainCache) fill(base context.Context, host string) (string, error) {
	c.mu.RLock()
	gen := c.gens[host]
	c.mu.RUnlock()
	ctx, cancel := context.WithTimeout(base, c.timeout)
	defer cancel()
	slug, err := c.src.AppForDomain(ctx, host)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", errRouteLookup, host, err)
	}
	e := domainEntry{slug: strings.ToLower(slug)}
	if e.slug == "" {
		e.expires = time.Now().Add(unknownHostTTL)
	}
	c.mu.Lock()
	if c.gens[host] == gen {
		if len(c.entries) >= maxDomainEntries {
			c.entries = map[string]domainEntry{}
		}
		c.entries[host] = e
	}
	c.mu.Unlock()
	return e.slug, nil
}

// invalidate forgets what host serves.
func (c *domainCache) invalidate(host string) {
	c.mu.Lock()
	delete(c.entries, host)
	c.gens[host]++
	c.mu.Unlock()
}
