package gateway

import (
	"bytes"
	"html"

	"github.com/valyala/fasthttp"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

var (
	textHTML   = []byte("text/html")
	ogMarker   = []byte(`property="og:`)
	ogMarker2  = []byte(`property='og:`)
	headOpen   = []byte("<head")
	htmlPrefix = []byte("<!doctype")
)

// addOpenGraph gives an HTML page of the app OpenGraph tags (og:title,
// og:description, og:url) from the app's name and description, so a shared
// link unfurls, unless the page sets its own og: tags. Only whole
// (buffered), uncompressed 200 responses are changed; streamed pages pass
// as they are.
func addOpenGraph(ctx *fasthttp.RequestCtx, route *v1.Route) {
	resp := &ctx.Response
	if resp.StatusCode() != fasthttp.StatusOK || resp.IsBodyStream() || ctx.IsHead() ||
		!bytes.HasPrefix(resp.Header.ContentType(), textHTML) || len(resp.Header.ContentEncoding()) > 0 {
		return
	}
	body := resp.Body()
	if bytes.Contains(body, ogMarker) || bytes.Contains(body, ogMarker2) {
		return
	}
	at := insertAt(body)
	if at < 0 {
		return
	}
	var tags bytes.Buffer
	tags.Grow(256)
	meta := func(prop, content string) {
		tags.WriteString(`<meta property="og:`)
		tags.WriteString(prop)
		tags.WriteString(`" content="`)
		tags.WriteString(html.EscapeString(content))
		tags.WriteString(`">`)
	}
	meta("title", route.GetTitle())
	if d := route.GetDescription(); d != "" {
		meta("description", d)
	}
	scheme := "http://"
	if ctx.IsTLS() || string(ctx.Request.Header.Peek("X-Forwarded-Proto")) == "https" {
		scheme = "https://"
	}
	meta("url", scheme+string(ctx.Host())+string(ctx.Path()))
	meta("type", "website")
	out := make([]byte, 0, len(body)+tags.Len())
	out = append(out, body[:at]...)
	out = append(out, tags.Bytes()...)
	out = append(out, body[at:]...)
	resp.SetBodyRaw(out)
}

// insertAt returns where in an HTML page the tags go: just after the
// <head> tag, else at the start of a page that looks like HTML, else -1
// (not a page: a fragment such as an htmx partial is left alone).
func insertAt(body []byte) int {
	lower := bytes.ToLower(body[:min(len(body), 4096)])
	if i := bytes.Index(lower, headOpen); i >= 0 {
		if j := bytes.IndexByte(lower[i:], '>'); j >= 0 {
			return i + j + 1
		}
		return -1
	}
	trimmed := bytes.TrimLeft(lower, " \t\r\n")
	if bytes.HasPrefix(trimmed, htmlPrefix) || bytes.HasPrefix(trimmed, []byte("<html")) {
		if i := bytes.Index(lower, []byte("<html")); i >= 0 {
			if j := bytes.IndexByte(lower[i:], '>'); j >= 0 {
				return i + j + 1
			}
		}
	}
	return -1
}
