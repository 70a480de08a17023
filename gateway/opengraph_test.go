package gateway

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

func TestAddOpenGraph(t *testing.T) {
	route := &v1.Route{Title: "notes", Description: `Notes & "quotes" <b>`}
	for _, tc := range []struct {
		name, ctype, body string
		method, userAgent string
		status            int
		want              string // substring of the result; "" means unchanged
	}{
		{name: "page with head", ctype: "text/html; charset=utf-8", status: 200,
			body: "<!doctype html><html><HEAD><title>x</title></HEAD><body>hi</body></html>",
			want: `<HEAD><meta property="og:title" content="notes"><meta property="og:description" content="Notes &amp; &#34;quotes&#34; &lt;b&gt;"><meta property="og:url" content="http://notes.example.test/p"><meta property="og:type" content="website"><title>`},
		{name: "page without head", ctype: "text/html", status: 200, body: "<!DOCTYPE html>\n<html lang=en><body>hi</body></html>",
			want: `<html lang=en><meta property="og:title" content="notes">`},
		{name: "own og tags kept", ctype: "text/html", status: 200, body: `<html><head><meta property="og:title" content="mine"></head></html>`},
		{name: "fragment left alone", ctype: "text/html", status: 200, body: "<li>one</li>"},
		{name: "json left alone", ctype: "application/json", status: 200, body: `{"head":"<head>"}`},
		{name: "error page left alone", ctype: "text/html", status: 404, body: "<html><head></head></html>"},
		{name: "json for a browser left alone", ctype: "application/json", status: 200, body: `{"a":1}`,
			userAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"},
		{name: "json for a link preview", ctype: "application/json", status: 200, body: `{"a":1}`,
			userAgent: "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
			want:      `<!doctype html><html><head><meta charset="utf-8"><meta property="og:title" content="notes"><meta property="og:description" content="Notes &amp; &#34;quotes&#34; &lt;b&gt;"><meta property="og:url" content="http://notes.example.test/p"><meta property="og:type" content="website"><title>notes</title></head><body><h1>notes</h1><p>Notes &amp; &#34;quotes&#34; &lt;b&gt;</p><p><a href="http://notes.example.test/p">http://notes.example.test/p</a></p></body></html>`},
		{name: "text for another crawler", ctype: "text/plain", status: 200, body: "hi",
			userAgent: "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", want: `<meta property="og:title" content="notes">`},
		{name: "an error for a crawler left alone", ctype: "application/json", status: 404, body: `{"detail":"Not Found"}`, userAgent: "Twitterbot/1.0"},
		{name: "a POST from a crawler's service left alone", method: "POST", ctype: "application/json", status: 200, body: `{"text":"ok"}`, userAgent: "Slackbot 1.0 (+https://api.slack.com/robots)"},
		{name: "a POST from a crawler left alone", method: "POST", ctype: "application/json", status: 200, body: `{"text":"ok"}`, userAgent: "Twitterbot/1.0"},
		{name: "other types left alone", ctype: "application/activity+json", status: 200, body: `{"type":"Note"}`, userAgent: "Twitterbot/1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI("/p")
			ctx.Request.Header.SetHost("notes.example.test")
			ctx.Request.Header.SetUserAgent(tc.userAgent)
			if tc.method != "" {
				ctx.Request.Header.SetMethod(tc.method)
			}
			ctx.Response.SetStatusCode(tc.status)
			ctx.Response.Header.SetContentType(tc.ctype)
			ctx.Response.SetBodyString(tc.body)
			addOpenGraph(&ctx, route)
			got := string(ctx.Response.Body())
			if tc.want == "" {
				if got != tc.body {
					t.Errorf("body changed:\n%s", got)
				}
				return
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("body:\n%s\nwant it to contain:\n%s", got, tc.want)
			}
			if ct := string(ctx.Response.Header.ContentType()); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("content type %q of a page with tags", ct)
			}
		})
	}
}

// BenchmarkIsPreviewCrawler is what every buffered non-HTML answer pays
// for the check (a browser's User-Agent, the common case).
func BenchmarkIsPreviewCrawler(b *testing.B) {
	ua := []byte("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
	for b.Loop() {
		if isPreviewCrawler(ua) {
			b.Fatal("a browser taken for a crawler")
		}
	}
}
