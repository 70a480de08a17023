package gateway

import (
	"bytes"
	"encoding/json"
	"html"
	"strconv"

	"github.com/valyala/fasthttp"
)

// writeError replaces whatever response ctx holds with a small page stating
// a: JSON ({"error": reason}) when the request's Accept prefers JSON, HTML
// otherwise.
func writeError(ctx *fasthttp.RequestCtx, a answer) {
	ctx.Response.Reset() // a failed upstream may have left headers behind
	ctx.SetStatusCode(a.status)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if a.retryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(a.retryAfter))
	}
	if prefersJSON(ctx.Request.Header.Peek("Accept")) {
		body, _ := json.Marshal(struct {
			Error string `json:"error"`
		}{a.reason}) // a struct of one string always marshals
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
		return
	}
	title := strconv.Itoa(a.status) + " " + fasthttp.StatusMessage(a.status)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBodyString(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>` + title + `</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}h1{font-size:1.4em}</style>
</head><body><h1>` + title + `</h1>
<p>` + html.EscapeString(a.reason) + `</p>
</body></html>
`)
}

// prefersJSON reports whether an Accept header ranks application/json (or a
// +json type) above text/html. Equal ranks go to whichever is listed first;
// a header naming neither prefers HTML.
func prefersJSON(accept []byte) bool {
	jsonQ, htmlQ := -1.0, -1.0
	jsonFirst := false
	for part := range bytes.SplitSeq(accept, []byte(",")) {
		typ, params, _ := bytes.Cut(part, []byte(";"))
		typ = bytes.ToLower(bytes.TrimSpace(typ))
		q := quality(params)
		switch {
		case bytes.Equal(typ, []byte("application/json")) || bytes.HasSuffix(typ, []byte("+json")):
			if htmlQ < 0 && jsonQ < 0 {
				jsonFirst = true
			}
			jsonQ = max(jsonQ, q)
		case bytes.Equal(typ, []byte("text/html")):
			htmlQ = max(htmlQ, q)
		}
	}
	if jsonQ <= 0 {
		return false
	}
	return jsonQ > htmlQ || (jsonQ == htmlQ && jsonFirst)
}

// quality returns the q parameter of one Accept element's parameters: 1
// when absent, 0 when malformed.
func quality(params []byte) float64 {
	for p := range bytes.SplitSeq(params, []byte(";")) {
		k, v, ok := bytes.Cut(bytes.TrimSpace(p), []byte("="))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(k), []byte("q")) {
			continue
		}
		q, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
		if err != nil || q < 0 || q > 1 {
			return 0
		}
		return q
	}
	return 1
}
