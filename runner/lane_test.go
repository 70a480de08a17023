package runner

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// laneApp answers in every way the lane must answer as uvicorn does: JSON,
// a stream, an exception, no answer at all, an answer shorter than its
// Content-Length, a header value uvicorn refuses, cookies, 204, and HEAD.
const laneApp = `import asyncio
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

api = FastAPI()

@api.get("/json")
def json_(q: str = ""):
    return {"q": q}

@api.get("/stream")
async def stream():
    async def events():
        for i in range(3):
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.01)
    return StreamingResponse(events(), media_type="text/event-stream")

@api.get("/boom")
def boom():
    raise ValueError("boom")

@api.post("/echo")
async def echo(request: Request):
    return {"body": (await request.body()).decode(), "type": request.headers.get("content-type"),
            "path": request.url.path, "raw": request.scope["raw_path"].decode(), "query": request.url.query}

@api.post("/size")
async def size(request: Request):
    import zlib
    body = await request.body()
    return {"size": len(body), "crc": zlib.crc32(body)}

@api.get("/cookies")
def cookies():
    r = Response("c", headers={"x-a": "1"})
    r.set_cookie("a", "1")
    r.set_cookie("b", "2")
    return r

@api.get("/empty")
def empty():
    return Response(status_code=204)

async def app(scope, receive, send):
    path = scope.get("path")
    if path == "/raw/none":
        return
    if path == "/raw/short":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"short"})
        return
    if path == "/raw/badheader":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-bad", b"a\r\nb")]})
        return
    await api(scope, receive, send)
`

// laneCheck serves laneApp on a Unix socket as a runner does (the
// bootstrap's RunnerProtocol), sends each request of sys.argv[3] both as a
// lane frame and as HTTP, each on a connection of its own that closes
// after the answer, and prints every answer's bytes.
const laneCheck = `import asyncio, importlib.util, json, logging, os, socket, sys
spec = importlib.util.spec_from_file_location("bootstrap", sys.argv[1])
bootstrap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bootstrap)
import uvicorn
logging.disable(logging.CRITICAL)
spec = importlib.util.spec_from_file_location("lane_app", sys.argv[2])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
requests = json.load(open(sys.argv[3]))

async def main():
    path = os.path.join(os.path.dirname(sys.argv[1]), "app.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.listen(16)
    config = bootstrap.new_config(sock, mod.app)
    config.lifespan = "off"
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    out = []
    for raw in requests:
        request = raw.encode("latin-1")
        got = {}
        for kind in ("lane", "http"):
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(bytes([1]) + len(request).to_bytes(4, "big") + request if kind == "lane" else request)
            got[kind] = (await asyncio.wait_for(reader.read(), 10)).decode("latin-1")
            writer.close()
        out.append(got)
    await server.shutdown()
    print(json.dumps(out))

asyncio.run(main())
`

// TestLaneAnswersAsUvicorn holds GatewayLane to uvicorn's own HTTP protocol
// on the same runner: every request gets the same bytes back on the lane
// as in HTTP, but for the byte that starts a lane answer and the Date
// header's second.
func TestLaneAnswersAsUvicorn(t *testing.T) {
	const closeHdr = "Host: r\r\nX-Forwarded-For: 10.0.0.1\r\nX-Request-Id: 00000000000000aa\r\nConnection: close\r\n"
	requests := []string{
		"GET /json?q=a%20b HTTP/1.1\r\n" + closeHdr + "\r\n",
		"HEAD /json?q=x HTTP/1.1\r\n" + closeHdr + "\r\n",
		"GET /stream HTTP/1.1\r\n" + closeHdr + "\r\n",
		"GET /boom HTTP/1.1\r\n" + closeHdr + "\r\n",
		"POST /echo?x=1 HTTP/1.1\r\n" + closeHdr + "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
		"POST /echo HTTP/1.1\r\n" + closeHdr + "Transfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\nX-T: 1\r\n\r\n",
		"POST /a%2Fb/../echo HTTP/1.1\r\n" + closeHdr + "Content-Length: 0\r\n\r\n",
		// Read from many pieces (the socket's buffer is smaller).
		"POST /size HTTP/1.1\r\n" + closeHdr + "Content-Length: 3000000\r\n\r\n" + strings.Repeat("0123456789", 300000),
		"GET /cookies HTTP/1.1\r\n" + closeHdr + "\r\n",
		"GET /empty HTTP/1.1\r\n" + closeHdr + "\r\n",
		"GET /nowhere HTTP/1.1\r\n" + closeHdr + "\r\n",
		"GET /\xc3\xa9 HTTP/1.1\r\n" + closeHdr + "\r\n",
		"GET /raw/none HTTP/1.1\r\n" + closeHdr + "\r\n",
		"GET /raw/short HTTP/1.1\r\n" + closeHdr + "\r\n",
		"GET /raw/badheader HTTP/1.1\r\n" + closeHdr + "\r\n",
	}
	reqs, err := json.Marshal(requests)
	if err != nil {
		t.Fatal(err)
	}
	out := runBootstrapCheck(t, laneCheck, "app.py", laneApp, "requests.json", string(reqs))
	var got []struct{ Lane, HTTP string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got) != len(requests) {
		t.Fatalf("%d answers for %d requests", len(got), len(requests))
	}
	date := regexp.MustCompile(`(?m)^date: [^\r]*\r$`)
	for i, g := range got {
		lane, ok := bytes.CutPrefix([]byte(g.Lane), []byte{0x02})
		if g.Lane != "" && !ok {
			t.Errorf("%q: lane answer %q does not start with 0x02", requests[i], g.Lane)
		}
		lane = date.ReplaceAll(lane, []byte("date: D\r"))
		http := date.ReplaceAll([]byte(g.HTTP), []byte("date: D\r"))
		if !bytes.Equal(lane, http) {
			t.Errorf("%q:\nlane %q\nhttp %q", requests[i], lane, http)
		}
	}
	// The answers were answers: a sample, against a lane that answers
	// nothing as HTTP does.
	if !bytes.Contains([]byte(got[0].HTTP), []byte(`{"q":"a b"}`)) || !bytes.Contains([]byte(got[5].HTTP), []byte(`"body":"hello"`)) ||
		!bytes.Contains([]byte(got[7].HTTP), []byte(`{"size":3000000,`)) {
		t.Errorf("answers %q, %q and %q", got[0].HTTP, got[5].HTTP, got[7].HTTP)
	}
}
