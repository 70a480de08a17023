package gateway

import (
	"net/netip"
	"strings"
)

// hostKind says which part of the platform a Host header addresses.
type hostKind int

const (
	hostUnknown hostKind = iota // neither the apex nor an app: 404
	hostAPI                     // the apex domain or an IP literal: the platform API
	hostApp                     // {slug}.{domain}: one app
)

// dataViewerPrefix starts the hosts of users' data viewers,
// mongo-{username}.{domain}, which the platform API serves; no app can be
// reached under such a name.
const dataViewerPrefix = "mongo-"

// parseHost classifies a request's Host header against domain, which must
// be lower-case without a trailing dot. It reads host as normalHost does,
// and returns the slug for hostApp. An IP literal (v4, or v6 with or
// without brackets) addresses the API, so the platform is reachable before
// DNS is set up.
func parseHost(host, domain string) (hostKind, string) {
	host = normalHost(host)
	if host == "" {
		return hostUnknown, ""
	}
	if host == domain {
		return hostAPI, ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return hostAPI, ""
	}
	slug, ok := strings.CutSuffix(host, "."+domain)
	if !ok || !isDNSLabel(slug) {
		return hostUnknown, ""
	}
	return hostApp, slug
}

// normalHost is host lower-cased, without a port and one trailing dot; ""
// when it is not a host.
func normalHost(host string) string {
	return strings.ToLower(strings.TrimSuffix(stripPort(host), "."))
}

// stripPort removes a ":port" suffix and the brackets of an IPv6 literal.
// A bare IPv6 literal (more than one colon, no brackets) is returned whole.
func stripPort(host string) string {
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return ""
		}
		rest := host[end+1:]
		if rest != "" && (rest[0] != ':' || !isPort(rest[1:])) {
			return ""
		}
		return host[1:end]
	}
	i := strings.IndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[i+1:], ':') >= 0 {
		return host
	}
	if !isPort(host[i+1:]) {
		return ""
	}
	return host[:i]
}

// isPort reports whether s is 1-5 decimal digits.
func isPort(s string) bool {
	if len(s) == 0 || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isDNSLabel reports whether s is one lower-case DNS label: 1-63 of a-z,
// 0-9 and '-', not starting or ending with '-'.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
