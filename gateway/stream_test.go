package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// readEvents sends each server-sent event read from r (the text up to a
// blank line) on the returned channel, which is closed at end of stream.
func readEvents(r io.Reader) <-chan string {
	events := make(chan string)
	go func() {
		defer close(events)
		br := bufio.NewReader(r)
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\n" {
				events <- ev.String()
				ev.Reset()
				continue
			}
			ev.WriteString(line)
		}
	}()
	return events
}

func TestServerSentEventsArriveAsProduced(t *testing.T) {
	t.Parallel()
	h, _ := newEdgeHarness(t, options{})

	resp, err := h.client.Get("http://demo.example.test/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type = %q", ct)
	}
	if diff := cmp.Diff([]string{"chunked"}, resp.TransferEncoding); diff != "" {
		t.Errorf("Transfer-Encoding (-want +got):\n%s", diff)
	}
	events := readEvents(resp.Body)

	// The app sends event 2 only after /sse/release, which the test calls
	// only after it has event 1: a gateway that held the response back
	// until the end would deliver nothing, and the wait would fail.
	var got []string
	var ev string
	wait(t, chanOf(events, &ev), "event 1")
	got = append(got, ev)
	if status, _, body := h.do(t, http.MethodPost, "http://demo.example.test/sse/release", "", nil); status != http.StatusOK {
		t.Fatalf("release: %d %s", status, body)
	}
	wait(t, chanOf(events, &ev), "event 2")
	got = append(got, ev)
	wait(t, chanOf(events, &ev), "end of stream")
	if ev != "" {
		t.Errorf("unexpected event after the last: %q", ev)
	}
	want := []string{"event: tick\ndata: 1\n", "event: tick\ndata: 2\n"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// The stream is over, so the runner has nothing in flight: the
	// entry was released when fasthttp closed the body, before it sent
	// the last chunk.
	if e := h.g.runners.serving(&v1.Route{AppId: "app1", Version: "edge", Entrypoint: "main:app"}); e == nil || e.busy() {
		t.Errorf("runner entry after the stream: %v, want in service and idle", e)
	}
}

func TestStreamedResponsesReuseRunnerConnections(t *testing.T) {
	t.Parallel()
	dials := &dialCounter{}
	h, _ := newEdgeHarness(t, options{dial: dials.dial})
	h.getJSON(t, "http://demo.example.test/healthz")

	// A chunked body and a 5 MB one both stream; read to the end, they
	// leave their runner connection fit for the next request.
	before := dials.total()
	for i := range 3 {
		for _, path := range []string{"/chunks", "/large"} {
			status, hdr, body := h.do(t, http.MethodGet, "http://demo.example.test"+path, "", nil)
			if status != http.StatusOK {
				t.Fatalf("%s: %d", path, status)
			}
			switch path {
			case "/chunks":
				want := "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n"
				if body != want {
					t.Errorf("round %d %s: %q, want %q", i, path, body, want)
				}
			case "/large":
				if len(body) != 5<<20 || hdr.Get("Content-Length") != fmt.Sprint(5<<20) {
					t.Errorf("round %d %s: %d bytes, Content-Length %q", i, path, len(body), hdr.Get("Content-Length"))
				}
			}
		}
	}
	if n := dials.total() - before; n != 0 {
		t.Errorf("%d new runner connections for 6 sequential streamed responses, want 0", n)
	}
}
