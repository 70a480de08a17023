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
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI("/p")
			ctx.Request.Header.SetHost("notes.example.test")
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
		})
	}
}
