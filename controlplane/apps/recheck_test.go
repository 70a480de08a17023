package apps

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofastapi/gofastapi/controlplane/embedded/embeddedtest"
	"github.com/gofastapi/gofastapi/controlplane/ratelimit"
	"github.com/gofastapi/gofastapi/controlplane/store"
)

// goneCNAME answers that no host has a CNAME record, counting look-ups.
type goneCNAME struct{ lookups atomic.Int32 }

func (r *goneCNAME) LookupCNAME(_ context.Context, host string) (string, error) {
	r.lookups.Add(1)
	return "", &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestRecheckDomainsAcrossReplicas: two control-plane replicas re-checking
// the same domains check each once an interval between them, so a
// domain's misses count intervals, not replicas.
func TestRecheckDomainsAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, embeddedtest.Mongo(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{Username: "alice"}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	a := &store.App{Name: "shop", OwnerID: u.ID}
	if err := st.CreateApp(ctx, a); err != nil {
		t.Fatal(err)
	}
	const host = "www.gone-example.test"
	if err := st.AddDomain(ctx, host, a.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	_, rdb := embeddedtest.Redis(t)
	dns := &goneCNAME{}
	replica := func() *Service {
		return &Service{cfg: Config{Store: st, Domain: "localhost", Resolver: dns, Rechecks: ratelimit.New(rdb), Logger: slog.New(slog.DiscardHandler)}}
	}
	r1, r2 := replica(), replica()

	var wg sync.WaitGroup
	for _, r := range []*Service{r1, r2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.RecheckDomains(ctx, time.Hour); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := dns.lookups.Load(); n != 1 {
		t.Errorf("two replicas re-checking at once looked the domain up %d times, want 1", n)
	}
	if _, err := r2.RecheckDomains(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := dns.lookups.Load(); n != 1 {
		t.Errorf("a re-check within the interval of the last looked the domain up again (%d look-ups)", n)
	}
	failing, err := st.AppDomainsFailing(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(failing) != 1 {
		t.Errorf("failing domains after one interval's re-checks: %q, want %s", failing, host)
	}

	// An interval later (the claim's window has expired), the next
	// re-check counts a second miss.
	if err := rdb.Del(ctx, ratelimit.Key("domain-recheck:"+host)).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := r1.RecheckDomains(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := dns.lookups.Load(); n != 2 {
		t.Errorf("the next interval's re-check made %d look-ups in all, want 2", n)
	}
	misses, err := st.DomainMisses(ctx, host, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if misses != 2 {
		t.Errorf("misses after two intervals = %d, want 2", misses)
	}
}
