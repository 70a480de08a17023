package apps

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/ratelimit"
	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// maxDomains bounds the custom domains of one app.
const maxDomains = 5

// cnameTimeout bounds the DNS look-up that checks a new custom domain.
const cnameTimeout = 5 * time.Second

// CNAMEResolver looks up the canonical name of a host (*net.Resolver).
type CNAMEResolver interface {
	LookupCNAME(ctx context.Context, host string) (string, error)
}

// AddDomain implements AppService.AddDomain: the domain must be a name of
// the caller's own, shown by a CNAME record pointing at the app's host.
func (s *Service) AddDomain(ctx context.Context, req *connect.Request[v1.AddDomainRequest]) (*connect.Response[v1.AddDomainResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	host, err := s.checkDomain(req.Msg.GetDomain())
	if err != nil {
		return nil, err
	}
	have, err := s.cfg.Store.AppDomains(ctx, a.ID)
	if err != nil {
		return nil, s.fail("list domains", err)
	}
	if len(have) >= maxDomains && !slices.Contains(have, host) {
		return nil, connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("app %s has %d custom domains, the most an app may have: remove one first", a.Name, maxDomains))
	}
	if err := s.checkCNAME(ctx, host, a.Name); err != nil {
		return nil, err
	}
	switch err := s.cfg.Store.AddDomain(ctx, host, a.ID, a.OwnerID); {
	case errors.Is(err, store.ErrDuplicate):
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("%s already serves another app: remove it there first", host))
	case err != nil:
		return nil, s.fail("add domain", err)
	}
	if err := s.cfg.Publisher.SetDomain(ctx, host, a.Name); err != nil {
		return nil, s.fail("publish domain", err)
	}
	s.event(ctx, a.ID, "now served at %s as well", host)
	p, err := s.appWithDomains(ctx, a)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.AddDomainResponse{App: p}), nil
}

// RemoveDomain implements AppService.RemoveDomain.
func (s *Service) RemoveDomain(ctx context.Context, req *connect.Request[v1.RemoveDomainRequest]) (*connect.Response[v1.RemoveDomainResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	host := normalizeDomain(req.Msg.GetDomain())
	switch err := s.cfg.Store.RemoveDomain(ctx, host, a.ID); {
	case errors.Is(err, store.ErrNotFound):
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("app %s is not served at %q", a.Name, req.Msg.GetDomain()))
	case err != nil:
		return nil, s.fail("remove domain", err)
	}
	if err := s.cfg.Publisher.DeleteDomain(ctx, host); err != nil {
		return nil, s.fail("unpublish domain", err)
	}
	s.event(ctx, a.ID, "no longer served at %s", host)
	p, err := s.appWithDomains(ctx, a)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.RemoveDomainResponse{App: p}), nil
}

// AppForDomain returns the slug of the app served at custom domain host
// (lower-case, without port), or "" if none. Redis is a cache: a domain
// it has lost is read from the platform database and published again.
func (s *Service) AppForDomain(ctx context.Context, host string) (string, error) {
	slug, err := s.cfg.Publisher.Domain(ctx, host)
	if err != nil || slug != "" {
		return slug, err
	}
	id, err := s.cfg.Store.DomainApp(ctx, host)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	a, err := s.cfg.Store.AppByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	return a.Name, s.cfg.Publisher.SetDomain(ctx, host, a.Name)
}

// appWithDomains is a's message with its draft status and its domains.
func (s *Service) appWithDomains(ctx context.Context, a *store.App) (*v1.App, error) {
	d, err := s.draft(ctx, a.ID)
	if err != nil {
		return nil, s.fail("get draft", err)
	}
	p := s.appProto(a, d)
	if err := s.setDomains(ctx, p); err != nil {
		return nil, err
	}
	return p, nil
}

// setDomains fills app p's custom domains and those of them whose last
// re-check missed.
func (s *Service) setDomains(ctx context.Context, p *v1.App) error {
	var err error
	if p.Domains, err = s.cfg.Store.AppDomains(ctx, p.GetId()); err != nil {
		return s.fail("list domains", err)
	}
	if len(p.Domains) > 0 {
		if p.DomainsFailing, err = s.cfg.Store.AppDomainsFailing(ctx, p.GetId()); err != nil {
			return s.fail("list domains", err)
		}
	}
	return nil
}

// moveDomains points app a's custom domains at its new name.
func (s *Service) moveDomains(ctx context.Context, a *store.App) error {
	hosts, err := s.cfg.Store.AppDomains(ctx, a.ID)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		if err := s.cfg.Publisher.SetDomain(ctx, h, a.Name); err != nil {
			return err
		}
	}
	return nil
}

func normalizeDomain(raw string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(raw)), ".")
}

// checkDomain returns raw as the host it names, or says what is wrong
// with it.
func (s *Service) checkDomain(raw string) (string, error) {
	host := normalizeDomain(raw)
	platform := strings.ToLower(s.cfg.Domain)
	switch {
	case host == "":
		return "", invalid("name the domain, such as shop.example.com")
	case len(host) > 253:
		return "", invalid("domain %q is longer than 253 characters", raw)
	case net.ParseIP(host) != nil:
		return "", invalid("%q is an IP address: use a domain name, with a CNAME record", raw)
	case host == platform || strings.HasSuffix(host, "."+platform):
		return "", invalid("%q is under the platform's own domain %s, where every app has NAME.%s already: a custom domain is one of yours", raw, platform, platform)
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return "", invalid("%q is not a full domain name: use one such as shop.example.com", raw)
	}
	for _, l := range labels {
		if !isDomainLabel(l) {
			return "", invalid("%q is not a valid domain name: each dot-separated part is 1-63 letters, digits or dashes, and does not start or end with a dash", raw)
		}
	}
	return host, nil
}

func isDomainLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// checkCNAME reports whether host has a CNAME record pointing at app
// slug's own host: that proves the caller controls the domain's DNS, and
// that it was meant for this app (a CNAME to the apex alone would let
// any user claim it first).
func (s *Service) checkCNAME(ctx context.Context, host, slug string) error {
	c := s.lookupCNAME(ctx, host, slug)
	if c.ok {
		return nil
	}
	return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
		"the domain %s %s: add a CNAME record for %s pointing at %s, wait until DNS serves it, then add the domain again", host, c.found, host, c.target))
}

// cnameCheck is what a look-up of a custom domain's CNAME record found.
type cnameCheck struct {
	ok     bool   // it points at its app's host
	target string // the app's host
	found  string // what was found instead, for a message
	// settled is true when DNS answered (no record, another target), as
	// against a look-up that failed (timeout, server failure).
	settled bool
}

// lookupCNAME looks up host's CNAME record, which must point at app
// slug's own host.
func (s *Service) lookupCNAME(ctx context.Context, host, slug string) cnameCheck {
	c := cnameCheck{target: slug + "." + strings.ToLower(s.cfg.Domain), found: "has no CNAME record"}
	var r CNAMEResolver = net.DefaultResolver
	if s.cfg.Resolver != nil {
		r = s.cfg.Resolver
	}
	ctx, cancel := context.WithTimeout(ctx, cnameTimeout)
	defer cancel()
	cname, err := r.LookupCNAME(ctx, host)
	cname = normalizeDomain(cname)
	var dnsErr *net.DNSError
	switch {
	case err == nil && cname == c.target:
		c.ok, c.settled = true, true
	case err == nil && cname != host:
		c.found, c.settled = "points at "+cname, true
	case err == nil, errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		c.settled = true
	case ctx.Err() != nil:
		c.found = "could not be looked up in time"
	default:
		c.found = "could not be looked up"
	}
	return c
}

// domainMisses is how many re-checks in a row must find a custom domain's
// CNAME record gone or pointing elsewhere before the domain is removed:
// a DNS change being made, or a server's hiccup, does not remove it.
const domainMisses = 3

// RecheckDomains looks up the CNAME record of every custom domain again.
// A domain whose record, domainMisses checks in a row, is gone or points
// at anything but its app's host is removed from the app, with an event
// saying why: its owner no longer means it for the app (or no longer owns
// it), and a new owner may add it to an app of theirs. A look-up that
// fails counts for nothing. It returns how many domains it removed.
//
// With Config.Rechecks, a domain that a re-check (of this control plane
// or another replica) took less than three quarters of every ago is left
// alone: replicas re-checking every interval check each domain about once
// an interval between them, and "in a row" means intervals apart.
func (s *Service) RecheckDomains(ctx context.Context, every time.Duration) (int, error) {
	ds, err := s.cfg.Store.Domains(ctx)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, d := range ds {
		if s.cfg.Rechecks != nil {
			ok, _, err := s.cfg.Rechecks.Allow(ctx, "domain-recheck:"+d.Host, ratelimit.Rate{N: 1, Per: every * 3 / 4})
			if err != nil {
				return removed, err
			}
			if !ok {
				continue // another replica checked it this interval
			}
		}
		a, err := s.cfg.Store.AppByID(ctx, d.AppID)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile, its domains with it
		} else if err != nil {
			return removed, err
		}
		was, err := s.cfg.Store.DomainMisses(ctx, d.Host, d.AppID)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed meanwhile
		} else if err != nil {
			return removed, err
		}
		c := s.lookupCNAME(ctx, d.Host, a.Name)
		misses := was
		switch {
		case c.ok:
			misses = 0
		case c.settled:
			misses++
		}
		if misses < domainMisses {
			if misses != was {
				if err := s.cfg.Store.SetDomainMisses(ctx, d.Host, d.AppID, misses); err != nil && !errors.Is(err, store.ErrNotFound) {
					return removed, err
				}
			}
			continue
		}
		switch err := s.cfg.Store.RemoveDomain(ctx, d.Host, d.AppID); {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return removed, err
		}
		if err := s.cfg.Publisher.DeleteDomain(ctx, d.Host); err != nil {
			return removed, err
		}
		removed++
		s.event(ctx, a.ID, "no longer served at %s: the domain %s (checked %d times in a row), so it was removed; "+
			"add it again once its CNAME record points at %s", d.Host, c.found, domainMisses, c.target)
		s.cfg.Logger.Info("custom domain removed: its CNAME record no longer points at its app", "domain", d.Host, "app", a.Name, "found", c.found)
	}
	return removed, nil
}

// RecheckDomainsEvery runs RecheckDomains every interval until ctx ends.
func (s *Service) RecheckDomainsEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.RecheckDomains(ctx, every); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("re-check custom domains", "err", err)
		}
	}
}
