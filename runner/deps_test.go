package runner

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// TestPrepareDepsRefusesNamesThatAreNotHashes: the route's deps name a
// directory under the host's cache, so only a content hash may.
func TestPrepareDepsRefusesNamesThatAreNotHashes(t *testing.T) {
	s := &service{depsRoot: t.TempDir()}
	for _, h := range []string{"../../etc", strings.Repeat("A", 64), strings.Repeat("a", 63), strings.Repeat("a", 62) + "/x"} {
		if _, err := s.prepareDeps(context.Background(), h, &v1.SpecializeResponse{}); !errors.Is(err, errInvalidRequest) {
			t.Errorf("prepareDeps(%q) = %v; want an invalid request", h, err)
		}
	}
}
