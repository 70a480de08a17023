package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// edgePy is a FastAPI app with an endpoint for each behaviour the edge
// must preserve: the differential test's response kinds, server-sent
// events, endpoints that notice a client leaving, and WebSockets. The
// asyncio.Events are how tests drive it without sleeping: one request
// sets an event, another waits for it.
const edgePy = `import asyncio, hashlib

from fastapi import FastAPI, File, Form, Request, Response, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, StreamingResponse

app = FastAPI()
app.add_middleware(
    CORSMiddleware,
    allow_origins=["https://editor.example"],
    allow_methods=["GET", "POST", "PUT"],
    allow_headers=["X-Custom"],
    allow_credentials=True,
    expose_headers=["X-Trace"],
)

# Events the tests drive: set by one request, awaited by another.
sse_release = asyncio.Event()
wait_arrived = asyncio.Event()
wait_gone = asyncio.Event()
feed_gone = asyncio.Event()
ws_closed = asyncio.Event()

LARGE = bytes(range(256)) * (5 * 1024 * 1024 // 256)
TEXT = "gofastapi " * 300


@app.get("/healthz")
async def healthz():
    return {"ok": True}


@app.get("/json", name="json_route")
async def json_route():
    return {"a": 1, "list": [1, 2, 3], "text": "h\u00e9llo \u2713"}


@app.post("/json")
async def json_echo(item: dict):
    return {"received": item}


@app.get("/html", response_class=HTMLResponse)
async def html():
    return "<!doctype html><title>hi</title><p>hello</p>"


@app.get("/text")
async def text():
    r = PlainTextResponse("plain text\n", headers={"X-Custom": "yes", "X-Trace": "t-1"})
    r.set_cookie("session", "abc", httponly=True, samesite="lax")
    r.set_cookie("theme", "dark", max_age=3600, path="/app")
    return r


@app.api_route("/page", methods=["GET", "HEAD"])
async def page():
    return PlainTextResponse(TEXT)


@app.post("/form")
async def form(name: str = Form(...), tags: list[str] = Form([])):
    return {"name": name, "tags": tags}


@app.post("/upload")
async def upload(note: str = Form(...), file: UploadFile = File(...)):
    data = await file.read()
    return {"note": note, "filename": file.filename, "content_type": file.content_type,
            "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.post("/size")
async def size(request: Request):
    data = await request.body()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.get("/items/{item_id:path}")
async def items(item_id: str, request: Request):
    return {"item_id": item_id, "raw_path": request.scope["raw_path"].decode("latin-1"),
            "query": request.url.query, "q": request.query_params.getlist("q")}


@app.get("/redirect307")
async def redirect307():
    return RedirectResponse("/json", status_code=307)


@app.get("/redirect302")
async def redirect302(request: Request):
    r = RedirectResponse(request.url_for("json_route"), status_code=302)
    r.set_cookie("seen", "1")
    return r


@app.get("/large")
async def large():
    return Response(LARGE, media_type="application/octet-stream")


@app.get("/empty", status_code=204)
async def empty():
    return Response(status_code=204)


@app.get("/boom")
async def boom():
    raise RuntimeError("boom")


@app.get("/chunks")
async def chunks():
    async def gen():
        for i in range(5):
            yield f"chunk {i}\n"
    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/public")
async def public(request: Request):
    return {"url": str(request.url), "host": request.headers.get("host"),
            "scheme": request.url.scheme, "headers": dict(request.headers.items())}


@app.get("/sse")
async def sse():
    async def gen():
        yield "event: tick\ndata: 1\n\n"
        await sse_release.wait()
        yield "event: tick\ndata: 2\n\n"
    return StreamingResponse(gen(), media_type="text/event-stream")


@app.post("/sse/release")
async def release_sse():
    sse_release.set()
    return {}


@app.get("/wait")
async def wait(request: Request):
    wait_arrived.set()
    while not await request.is_disconnected():
        await asyncio.sleep(0.01)
    wait_gone.set()
    return {}


@app.get("/wait/arrived")
async def wait_has_arrived():
    await wait_arrived.wait()
    return {}


@app.get("/wait/gone")
async def wait_is_gone():
    await wait_gone.wait()
    return {"gone": True}


@app.get("/feed")
async def feed():
    async def gen():
        try:
            yield "data: 1\n\n"
            await asyncio.Event().wait()
        finally:
            feed_gone.set()
    return StreamingResponse(gen(), media_type="text/event-stream")


@app.get("/feed/gone")
async def feed_is_gone():
    await feed_gone.wait()
    return {"gone": True}


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text("hello")
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                break
            if msg.get("text") is not None:
                await websocket.send_text("echo: " + msg["text"])
            else:
                await websocket.send_bytes(b"echo: " + msg["bytes"])
    except WebSocketDisconnect:
        pass
    ws_closed.set()


@app.get("/ws/closed")
async def ws_is_closed():
    await ws_closed.wait()
    return {"closed": True}


@app.websocket("/ws/deny")
async def ws_deny(websocket: WebSocket):
    await websocket.close(code=1008)


gz = FastAPI()
gz.add_middleware(GZipMiddleware, minimum_size=500)


@gz.get("/big")
async def gz_big():
    return PlainTextResponse(TEXT)


app.mount("/gz", gz)


@app.get("/hop")
async def hop():
    return PlainTextResponse("hop", headers={"Keep-Alive": "timeout=99", "Connection": "X-Resp-Hop", "X-Resp-Hop": "1", "X-Kept": "1"})
`

// newEdgeHarness serves edgePy as app "demo" (app1 at version "edge";
// versions "edge2" and up also run edgePy).
func newEdgeHarness(t *testing.T, o options) (*harness, *pythonPool) {
	t.Helper()
	pool := newPythonPool(t, map[string]string{"edge": edgePy, "edge2": edgePy})
	h := newHarness(t, pool, o)
	h.routes.set("demo", "app1", "edge")
	return h, pool
}

// byVersion returns the runner the pool started for version.
func (p *pythonPool) byVersion(t *testing.T, version string) *uvicornRunner {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.runners {
		if u.version == version {
			return u
		}
	}
	t.Fatalf("no runner for version %q", version)
	return nil
}

// roundTrip writes raw, an HTTP/1.1 request, on c and reads the response
// from br with its whole body.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write %q: %v", firstLine(raw), err)
	}
	return readResponse(t, br, raw)
}

// readResponse reads one response (to the request raw) and its body.
func readResponse(t *testing.T, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("parse request %q: %v", firstLine(raw), err)
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatalf("response to %q: %v", firstLine(raw), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body of response to %q: %v", firstLine(raw), err)
	}
	return resp, string(body)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}
