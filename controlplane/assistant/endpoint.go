package assistant

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// checkBaseURL reports what is wrong with a user's OpenAI-compatible
// endpoint. Users name the address the platform then connects to, so
// unless private endpoints are allowed it must be https, and (checked
// again at each connection, see publicOnly) not reach the platform's own
// network.
func checkBaseURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		return fmt.Errorf("base URL %q is not a URL such as https://api.openai.com/v1", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("base URL %q: give the API's root only, such as https://api.openai.com/v1", raw)
	case u.Scheme == "https":
	case u.Scheme == "http" && allowPrivate:
	default:
		return fmt.Errorf("base URL %q: the endpoint must be https", raw)
	}
	if allowPrivate {
		return nil
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !public(ip) {
		return fmt.Errorf("base URL %q is an address of a private network, which the platform does not call", raw)
	}
	return nil
}

// public reports whether ip is on the public internet.
func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() &&
		!netip.MustParsePrefix("100.64.0.0/10").Contains(ip) // carrier-grade NAT
}

var errPrivateAddress = errors.New("the endpoint resolves to a private network address, which the platform does not call")

// httpClient is the client that calls the providers: no cookies, no
// redirects (an endpoint could redirect anywhere), a bound on the whole
// exchange, and unless allowPrivate, connections to public addresses only,
// checked on the address actually dialled (a name may resolve anywhere).
func httpClient(allowPrivate bool, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if !allowPrivate {
		d.Control = publicOnly
	}
	tr := &http.Transport{
		Proxy: nil, DialContext: d.DialContext, ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: time.Minute, MaxIdleConnsPerHost: 4,
	}
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return errors.New("the endpoint answered with a redirect, which the platform does not follow")
	}}
}

// publicOnly refuses a connection to an address that is not public.
func publicOnly(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !public(ap.Addr()) {
		return errPrivateAddress
	}
	return nil
}
