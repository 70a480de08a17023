package assistant

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheckBaseURL(t *testing.T) {
	for _, tc := range []struct {
		url          string
		allowPrivate bool
		want         string // "" for accepted
	}{
		{"https://api.openai.com/v1", false, ""},
		{"https://203.0.113.7/v1", false, ""},
		{"http://api.openai.com/v1", false, "must be https"},
		{"https://127.0.0.1:8080/v1", false, "private network"},
		{"https://10.1.2.3/v1", false, "private network"},
		{"https://[::1]/v1", false, "private network"},
		{"https://169.254.169.254/latest", false, "private network"},
		{"https://100.64.0.1/v1", false, "private network"},
		{"http://127.0.0.1:8080/v1", true, ""},
		{"ftp://example.com", true, "must be https"},
		{"https://user:pw@example.com/v1", false, "root only"},
		{"not a url", false, "is not a URL"},
	} {
		err := checkBaseURL(tc.url, tc.allowPrivate)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkBaseURL(%q, %v) = %v, want %q", tc.url, tc.allowPrivate, err, tc.want)
		}
	}
}

// TestClientRefusesPrivateAddresses: a name that resolves to a private
// address passes checkBaseURL, so the dialer checks the address it
// connects to; and no redirect is followed.
func TestClientRefusesPrivateAddresses(t *testing.T) {
	srv := httptest.NewServer(http.RedirectHandler("https://example.com/", http.StatusFound))
	defer srv.Close()
	local := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	if _, err := httpClient(false, 5*time.Second).Get(local); !errors.Is(err, errPrivateAddress) {
		t.Errorf("GET %s with private addresses refused: %v", local, err)
	}
	_, err := httpClient(true, 5*time.Second).Get(srv.URL)
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("a redirect: %v, want it refused", err)
	}
}
