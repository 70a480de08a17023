package gateway

import (
	"bytes"
	"html"

	"github.com/valyala/fasthttp"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

var (
	textHTML   = []byte("text/html")
	appJSON    = []byte("application/json")
	textPlain  = []byte("text/plain")
	ogMarker   = []byte(`property="og:`)
	ogMarker2  = []byte(`property='og:`)
	headOpen   = []byte("<head")
	htmlPrefix = []byte("<!doctype")
)

// addOpenGraph gives an HTML page of the app OpenGraph tags (og:title,
// og:description, og:url) from the app's name and description, so a shared
// link unfurls, unless the page sets its own og: tags. Only whole
// (buffered), uncompressed 200 responses are changed; streamed pages pass
// as they are. A link-preview crawler (see isPreviewCrawler) whose GET is
// answered with JSON or plain text, which have no place for tags, gets a
// small page of the tags instead (previewPage). Only GETs: the same
// services POST to apps (a Slack command, say) and read their JSON.
func addOpenGraph(ctx *fasthttp.RequestCtx, route *v1.Route) {
	resp := &ctx.Response
	if resp.StatusCode() != fasthttp.StatusOK || resp.IsBodyStream() || ctx.IsHead() || len(resp.Header.ContentEncoding()) > 0 {
		return
	}
	if ct := resp.Header.ContentType(); !bytes.HasPrefix(ct, textHTML) {
		if (bytes.HasPrefix(ct, appJSON) || bytes.HasPrefix(ct, textPlain)) && ctx.IsGet() && isPreviewCrawler(ctx.Request.Header.UserAgent()) {
			previewPage(ctx, route)
		}
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
	tags := ogTags(ctx, route)
	out := make([]byte, 0, len(body)+len(tags))
	out = append(out, body[:at]...)
	out = append(out, tags...)
	out = append(out, body[at:]...)
	resp.SetBodyRaw(out)
}

// ogTags are the app's OpenGraph meta tags for the page requested.
func ogTags(ctx *fasthttp.RequestCtx, route *v1.Route) []byte {
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
	meta("url", pageURL(ctx))
	meta("type", "website")
	return tags.Bytes()
}

// pageURL is the URL the client asked for, as the client sees it.
func pageURL(ctx *fasthttp.RequestCtx) string {
	scheme := "http://"
	if ctx.IsTLS() || string(ctx.Request.Header.Peek("X-Forwarded-Proto")) == "https" {
		scheme = "https://"
	}
	return scheme + string(ctx.Host()) + string(ctx.Path())
}

// previewPage replaces the app's answer with an HTML page that carries
// its OpenGraph tags, its title and description, and a link to the URL.
func previewPage(ctx *fasthttp.RequestCtx, route *v1.Route) {
	title := html.EscapeString(route.GetTitle())
	var b bytes.Buffer
	b.WriteString(`<!doctype html><html><head><meta charset="utf-8">`)
	b.Write(ogTags(ctx, route))
	b.WriteString("<title>" + title + "</title></head><body><h1>" + title + "</h1>")
	if d := route.GetDescription(); d != "" {
		b.WriteString("<p>" + html.EscapeString(d) + "</p>")
	}
	u := html.EscapeString(pageURL(ctx))
	b.WriteString(`<p><a href="` + u + `">` + u + "</a></p></body></html>\n")
	ctx.Response.Header.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Del(fasthttp.HeaderContentDisposition)
	ctx.Response.SetBodyRaw(b.Bytes())
}

// previewCrawlers are in the User-Agent of the crawlers that fetch a
// shared link to show its preview (Slack, Discord, Facebook and iMessage,
// X, LinkedIn, WhatsApp, Telegram, Skype, Reddit, Pinterest), spelt as
// they spell them. Left out: those that also read JSON as JSON (oEmbed
// services such as Embedly and Iframely, Mastodon's ActivityPub).
var previewCrawlers = [][]byte{
	[]byte("Slackbot-LinkExpanding"), []byte("Discordbot"), []byte("facebookexternalhit"), []byte("Facebot"),
	[]byte("Twitterbot"), []byte("LinkedInBot"), []byte("WhatsApp/"), []byte("TelegramBot"),
	[]byte("SkypeUriPreview"), []byte("redditbot"), []byte("Pinterestbot"),
}

// isPreviewCrawler reports whether userAgent is a link-preview crawler's.
func isPreviewCrawler(userAgent []byte) bool {
	for _, c := range previewCrawlers {
		if bytes.Contains(userAgent, c) {
			return true
		}
	}
	return false
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
