package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/net/dns/dnsmessage"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// dnsServer is a DNS server on a loopback UDP port that answers every
// question about a name it has a CNAME for with that record, and the rest
// with NXDOMAIN: what the platform's check of a custom domain asks.
type dnsServer struct {
	conn  net.PacketConn
	mu    sync.Mutex
	cname map[string]string
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{conn: conn, cname: map[string]string{}}
	t.Cleanup(func() { conn.Close() })
	go d.serve()
	return d
}

func (d *dnsServer) addr() string { return d.conn.LocalAddr().String() }

// set gives name a CNAME record pointing at target ("" removes it).
func (d *dnsServer) set(name, target string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if target == "" {
		delete(d.cname, name+".")
		return
	}
	d.cname[name+"."] = target + "."
}

func (d *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		var req dnsmessage.Message
		if req.Unpack(buf[:n]) != nil || len(req.Questions) != 1 {
			continue
		}
		q := req.Questions[0]
		d.mu.Lock()
		target, ok := d.cname[strings.ToLower(q.Name.String())]
		d.mu.Unlock()
		res := dnsmessage.Message{
			Header:    dnsmessage.Header{ID: req.ID, Response: true, Authoritative: true, RecursionAvailable: true, RCode: dnsmessage.RCodeNameError},
			Questions: req.Questions,
		}
		if ok {
			res.RCode = dnsmessage.RCodeSuccess
			res.Answers = []dnsmessage.Resource{{
				Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeCNAME, Class: dnsmessage.ClassINET, TTL: 60},
				Body:   &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(target)},
			}}
		}
		out, err := res.Pack()
		if err == nil {
			d.conn.WriteTo(out, from)
		}
	}
}

// TestCustomDomains adds a custom domain to an app: only with a CNAME
// record pointing at the app's own host, only one app per domain; the
// domain then serves the app, follows a rename, and stops serving when it
// is removed or the app is deleted.
func TestCustomDomains(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	ctx := context.Background()
	dns := startDNS(t)
	data := t.TempDir()
	p := startPlatform(t, data, t.TempDir(), "--dns-resolver", dns.addr())
	alice, _ := p.signup(t, "alice", "alice password")
	bob, _ := p.signup(t, "bob", "bob's password")
	p.deploy(t, alice, "shop", fmt.Sprintf(helloApp, "shop v1"))
	p.deploy(t, bob, "bobs", fmt.Sprintf(helloApp, "bob's"))
	const host = "www.shop-example.test"
	add := func(token, app, domain string) (*v1.App, error) {
		res, err := p.as(token).apps.AddDomain(ctx, connect.NewRequest(&v1.AddDomainRequest{IdOrName: app, Domain: domain}))
		if err != nil {
			return nil, err
		}
		return res.Msg.GetApp(), nil
	}
	wantErr := func(what string, err error, code connect.Code, msg string) {
		t.Helper()
		if connect.CodeOf(err) != code || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v; want %v saying %q", what, err, code, msg)
		}
	}
	// getHost requests / of whatever app host serves.
	getHost := func(h string) (int, string) {
		code, _, body := p.request(h, "/", nil)
		return code, body
	}
	waitHost := func(h string, code int, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, body := getHost(h)
			if got == code && strings.Contains(body, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s = %d %s; want %d with %q", h, got, body, code, want)
			}
			time.Sleep(20 * time.Millisecond) // polling for a change in flight, not for readiness
		}
	}

	if code, _ := getHost(host); code != http.StatusNotFound {
		t.Fatalf("GET %s before it is added = %d, want 404", host, code)
	}
	for _, tc := range []struct{ domain, msg string }{
		{"", "name the domain"},
		{"localhost", "under the platform's own domain"},
		{"shop.localhost", "under the platform's own domain"},
		{"10.0.0.1", "is an IP address"},
		{"intranet", "not a full domain name"},
		{"bad_name.example.com", "not a valid domain name"},
		{"-x.example.com", "not a valid domain name"},
	} {
		_, err := add(alice, "shop", tc.domain)
		wantErr(fmt.Sprintf("domain %q", tc.domain), err, connect.CodeInvalidArgument, tc.msg)
	}
	_, err := add(alice, "shop", host)
	wantErr("no CNAME", err, connect.CodeFailedPrecondition,
		host+" has no CNAME record: add a CNAME record for "+host+" pointing at shop.localhost, wait until DNS serves it, then add the domain again")
	dns.set(host, "bobs.localhost")
	_, err = add(alice, "shop", host)
	wantErr("a CNAME to another app", err, connect.CodeFailedPrecondition, "points at bobs.localhost: add a CNAME record")
	_, err = add(bob, "shop", host)
	wantErr("another user's app", err, connect.CodeNotFound, `you have no app named "shop"`)

	dns.set(host, "shop.localhost")
	a, err := add(alice, "shop", "WWW.Shop-Example.test.")
	if err != nil {
		t.Fatalf("AddDomain with the CNAME in place: %v", err)
	}
	if strings.Join(a.GetDomains(), ",") != host {
		t.Errorf("domains %v, want [%s]", a.GetDomains(), host)
	}
	waitHost(host, 200, "shop v1")
	got, err := p.as(alice).apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: "shop"}))
	if err != nil || strings.Join(got.Msg.GetApp().GetDomains(), ",") != host {
		t.Errorf("GetApp domains %v (%v), want [%s]", got.Msg.GetApp().GetDomains(), err, host)
	}
	if out := p.mustCLIAs(alice, "domains", "shop"); strings.TrimSpace(out) != host {
		t.Errorf("gofastapi domains shop:\n%s", out)
	}
	// A domain the last re-check missed (see TestCustomDomainRecheck) says so.
	if res, err := platformDB(t, data).Collection("domains").UpdateOne(ctx, bson.M{"_id": host}, bson.M{"$set": bson.M{"misses": 2}}); err != nil || res.ModifiedCount != 1 {
		t.Fatalf("set the domain's misses: %v, %v", res, err)
	}
	got, err = p.as(alice).apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: "shop"}))
	if err != nil || strings.Join(got.Msg.GetApp().GetDomainsFailing(), ",") != host {
		t.Errorf("GetApp domains failing %v (%v), want [%s]", got.Msg.GetApp().GetDomainsFailing(), err, host)
	}
	if out := p.mustCLIAs(alice, "domains", "shop"); !strings.Contains(out, host+"  (its CNAME record was gone or pointed elsewhere at the last check; 3 such checks in a row remove it)") {
		t.Errorf("gofastapi domains shop with a missed check:\n%s", out)
	}
	dns.set(host, "bobs.localhost")
	_, err = add(bob, "bobs", host)
	wantErr("a domain another app has", err, connect.CodeAlreadyExists, host+" already serves another app")

	// A rename takes the domain along.
	if _, err := p.as(alice).apps.UpdateApp(ctx, connect.NewRequest(&v1.UpdateAppRequest{IdOrName: "shop", Name: ptr("store")})); err != nil {
		t.Fatal(err)
	}
	p.waitGet("store", "/", 200, "shop v1")
	waitHost(host, 200, "shop v1")

	if _, err := p.as(alice).apps.RemoveDomain(ctx, connect.NewRequest(&v1.RemoveDomainRequest{IdOrName: "store", Domain: host})); err != nil {
		t.Fatal(err)
	}
	waitHost(host, 404, "is not a host this platform serves")
	_, err = p.as(alice).apps.RemoveDomain(ctx, connect.NewRequest(&v1.RemoveDomainRequest{IdOrName: "store", Domain: host}))
	wantErr("removing it twice", err, connect.CodeNotFound, "is not served at")
	if out := p.mustCLIAs(alice, "domains", "store"); !strings.Contains(out, "store has no custom domains") {
		t.Errorf("gofastapi domains store after the removal:\n%s", out)
	}

	// Deleting the app frees its domains.
	dns.set(host, "store.localhost")
	if _, err := add(alice, "store", host); err != nil {
		t.Fatal(err)
	}
	waitHost(host, 200, "shop v1")
	if _, err := p.as(alice).apps.DeleteApp(ctx, connect.NewRequest(&v1.DeleteAppRequest{IdOrName: "store"})); err != nil {
		t.Fatal(err)
	}
	waitHost(host, 404, "")
	dns.set(host, "bobs.localhost")
	if _, err := add(bob, "bobs", host); err != nil {
		t.Fatalf("the domain of a deleted app, for another: %v", err)
	}
	waitHost(host, 200, "bob's")
}

// TestCustomDomainRecheck: custom domains are looked up again; one whose
// CNAME record is gone for three checks in a row is removed, saying why,
// and another user may then add it; one still pointing at its app stays.
func TestCustomDomainRecheck(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	ctx := context.Background()
	dns := startDNS(t)
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--dns-resolver", dns.addr(), "--domain-recheck", "100ms")
	alice, _ := p.signup(t, "alice", "alice password")
	bob, _ := p.signup(t, "bob", "bob's password")
	p.mustCLI("login", "--username", "alice", "--password", "alice password")
	p.deploy(t, alice, "shop", fmt.Sprintf(helloApp, "shop v1"))
	p.deploy(t, bob, "bobs", fmt.Sprintf(helloApp, "bob's"))
	const kept, gone = "www.kept-example.test", "www.gone-example.test"
	for _, h := range []string{kept, gone} {
		dns.set(h, "shop.localhost")
		if _, err := p.as(alice).apps.AddDomain(ctx, connect.NewRequest(&v1.AddDomainRequest{IdOrName: "shop", Domain: h})); err != nil {
			t.Fatal(err)
		}
	}
	dns.set(gone, "") // its owner took the record away
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		a, err := p.as(alice).apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: "shop"}))
		if err != nil {
			t.Fatal(err)
		}
		ds := strings.Join(a.Msg.GetApp().GetDomains(), ",")
		if ds == kept {
			break
		}
		if ds != kept+","+gone && ds != gone+","+kept || time.Now().After(deadline) {
			t.Fatalf("shop's domains %q; want %s kept and %s removed by the re-check", ds, kept, gone)
		}
	}
	p.waitLog("shop", "no longer served at "+gone+": the domain has no CNAME record (checked 3 times in a row), so it was removed; add it again once its CNAME record points at shop.localhost")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) { // the change travels through Redis pub/sub
		code, _, body := p.request(gone, "/", nil)
		if code == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s after its removal = %d %s, want 404", gone, code, body)
		}
	}
	if code, _, body := p.request(kept, "/", nil); code != 200 || !strings.Contains(body, "shop v1") {
		t.Errorf("GET %s, still pointing at shop = %d %s", kept, code, body)
	}
	dns.set(gone, "bobs.localhost") // the domain's new owner
	if _, err := p.as(bob).apps.AddDomain(ctx, connect.NewRequest(&v1.AddDomainRequest{IdOrName: "bobs", Domain: gone})); err != nil {
		t.Errorf("bob adds the removed domain: %v", err)
	}
}
