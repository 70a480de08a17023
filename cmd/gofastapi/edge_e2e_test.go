package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/websocket"
)

// edgeApp has a WebSocket echo, a stream that holds its second piece until
// it is released, and a page that shows what the app knows of its client.
const edgeApp = `import time
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import StreamingResponse

app = FastAPI()
state = {"released": False}


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text(f"hello {websocket.url.scheme}")
    while True:
        msg = await websocket.receive_text()
        await websocket.send_text("echo: " + msg)


@app.get("/stream")
def stream():
    def pieces():
        yield "data: first\n\n"
        deadline = time.monotonic() + 60
        while not state["released"] and time.monotonic() < deadline:
            time.sleep(0.01)
        yield "data: second\n\n"
    return StreamingResponse(pieces(), media_type="text/event-stream")


@app.get("/release")
def release():
    state["released"] = True
    return {"released": True}


@app.get("/client")
def client(request: Request):
    return {"client": request.client.host, "scheme": request.url.scheme, "url": str(request.url)}
`

// TestEdgeOnThePlatform: what the gateway's tests hold it to against plain
// uvicorn (in package gateway) also holds with a real runner, reached over
// its app's Unix socket: a WebSocket both ways, a stream delivered piece by
// piece, and the client's address as the gateway saw it.
func TestEdgeOnThePlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	p := startPlatform(t, t.TempDir(), t.TempDir())
	token, _ := p.signup(t, "edgar", "edgar's password")
	p.deploy(t, token, "edge", edgeApp)
	host := "edge.localhost:" + p.port

	t.Run("websocket", func(t *testing.T) {
		cfg, err := websocket.NewConfig("ws://"+host+"/ws", "http://"+host)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", "127.0.0.1:"+p.port)
		if err != nil {
			t.Fatal(err)
		}
		ws, err := websocket.NewClient(cfg, c)
		if err != nil {
			c.Close()
			t.Fatalf("handshake: %v", err)
		}
		defer ws.Close()
		var got []string
		for _, send := range []string{"", "one", strings.Repeat("x", 100<<10)} {
			if send != "" {
				if err := websocket.Message.Send(ws, send); err != nil {
					t.Fatal(err)
				}
			}
			var msg string
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				t.Fatalf("receive: %v", err)
			}
			got = append(got, msg)
		}
		if len(got) != 3 || got[0] != "hello ws" || got[1] != "echo: one" || got[2] != "echo: "+strings.Repeat("x", 100<<10) {
			t.Errorf("messages %.40q", got)
		}
	})

	t.Run("stream", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+p.port+"/stream", nil)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		br := bufio.NewReader(res.Body)
		// The first piece arrives while the app still holds the second.
		first, err := br.ReadString('\n')
		if err != nil || first != "data: first\n" {
			t.Fatalf("first piece %q (%v)", first, err)
		}
		if code, body := p.get("edge", "/release"); code != 200 {
			t.Fatalf("GET /release = %d %s", code, body)
		}
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "\ndata: second\n\n" {
			t.Errorf("rest of the stream %q (%v)", rest, err)
		}
	})

	t.Run("client", func(t *testing.T) {
		code, _, body := p.request("edge.localhost", "/client?x=1", http.Header{
			"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"https"}})
		var got map[string]string
		if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
			t.Fatalf("GET /client = %d %s (%v)", code, body, err)
		}
		// The client's own claims are not the app's word; the gateway's are.
		want := map[string]string{"client": "127.0.0.1", "scheme": "http", "url": fmt.Sprintf("http://%s/client?x=1", host)}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
	})
}
