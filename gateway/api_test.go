package gateway

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestAPIUpstream(t *testing.T) {
	release2, release3 := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s xfh=%s xfp=%s query=%s", r.Host,
			r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"), r.URL.RawQuery)
	})
	// A server-streaming RPC: three events, the handler blocked between
	// them until the test has seen the previous one.
	mux.HandleFunc("POST /gofastapi.v1.AppService/Deploy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/connect+json")
		f := w.(http.Flusher)
		for i, gate := range []chan struct{}{nil, release2, release3} {
			if gate != nil {
				select {
				case <-gate:
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprintf(w, "event %d\n", i+1)
			f.Flush()
		}
	})
	h := newHarness(t, &fakePool{}, options{api: mux})

	for _, host := range []string{testDomain, "127.0.0.1", "[::1]:8080"} {
		status, _, body := h.do(t, http.MethodGet, "http://"+host+"/hello?a=1&b=%2F", "", nil)
		want := fmt.Sprintf("host=%s xfh=%s xfp=http query=a=1&b=%%2F", host, host)
		if status != http.StatusOK || body != want {
			t.Errorf("GET %s/hello: %d %q, want 200 %q", host, status, body, want)
		}
	}

	req, err := http.NewRequest(http.MethodPost, "http://"+testDomain+"/gofastapi.v1.AppService/Deploy", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/connect+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines <- line
		}
	}()
	// Each event must arrive while the handler is still blocked before the
	// next one; a gateway that buffered the response would deliver nothing
	// until the handler returned, and the handler would never return.
	for i, next := range []chan struct{}{release2, release3, nil} {
		var line string
		wait(t, chanOf(lines, &line), fmt.Sprintf("event %d", i+1))
		if want := fmt.Sprintf("event %d\n", i+1); line != want {
			t.Fatalf("got %q, want %q", line, want)
		}
		if next != nil {
			close(next)
		}
	}
	var rest string
	wait(t, chanOf(lines, &rest), "end of stream")
	if rest != "" {
		t.Errorf("unexpected data after the last event: %q", rest)
	}
}

// chanOf returns a channel closed once a value (or the close of ch) has
// been received from ch into *dst.
func chanOf(ch <-chan string, dst *string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		*dst = <-ch
		close(done)
	}()
	return done
}
