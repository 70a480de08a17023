package gateway

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHost(t *testing.T) {
	type result struct {
		Kind hostKind
		Slug string
	}
	tests := []struct {
		name string
		host string
		want result
	}{
		{"apex", "example.test", result{hostAPI, ""}},
		{"apex with port", "example.test:8080", result{hostAPI, ""}},
		{"apex upper case", "EXAMPLE.Test", result{hostAPI, ""}},
		{"apex trailing dot", "example.test.", result{hostAPI, ""}},
		{"ipv4", "127.0.0.1", result{hostAPI, ""}},
		{"ipv4 with port", "10.1.2.3:80", result{hostAPI, ""}},
		{"ipv6 bracketed", "[::1]", result{hostAPI, ""}},
		{"ipv6 bracketed with port", "[2001:db8::1]:8443", result{hostAPI, ""}},
		{"ipv6 bare", "::1", result{hostAPI, ""}},
		{"app", "demo.example.test", result{hostApp, "demo"}},
		{"app with port", "demo.example.test:8080", result{hostApp, "demo"}},
		{"app upper case", "My-App2.Example.TEST", result{hostApp, "my-app2"}},
		{"app trailing dot", "demo.example.test.", result{hostApp, "demo"}},
		{"app 63 chars", "a23456789012345678901234567890123456789012345678901234567890123.example.test", result{hostApp, "a23456789012345678901234567890123456789012345678901234567890123"}},
		{"label too long", "a234567890123456789012345678901234567890123456789012345678901234.example.test", result{}},
		{"two labels", "a.b.example.test", result{}},
		{"empty label", ".example.test", result{}},
		{"leading hyphen", "-demo.example.test", result{}},
		{"trailing hyphen", "demo-.example.test", result{}},
		{"underscore", "my_app.example.test", result{}},
		{"other domain", "demo.example.com", result{}},
		{"domain as suffix of a label", "demoexample.test", result{}},
		{"parent domain", "test", result{}},
		{"empty", "", result{}},
		{"port only", ":8080", result{}},
		{"bad port", "demo.example.test:http", result{}},
		{"unclosed bracket", "[::1", result{}},
		{"junk after bracket", "[::1]x", result{}},
		{"ip-like slug", "1.2.3.4.example.test", result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, slug := parseHost(tt.host, testDomain)
			if diff := cmp.Diff(tt.want, result{kind, slug}); diff != "" {
				t.Errorf("parseHost(%q) (-want +got):\n%s", tt.host, diff)
			}
		})
	}
}
