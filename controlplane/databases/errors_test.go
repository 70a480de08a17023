package databases

import (
	"strings"
	"testing"
)

func TestInUseError(t *testing.T) {
	for _, tt := range []struct {
		apps []string
		want string
	}{
		{[]string{"shop"}, "database orders is used by app shop: choose another"},
		{[]string{"shop", "blog"}, "database orders is used by apps shop and blog: choose another"},
		{[]string{"shop", "blog", "wiki"}, "database orders is used by apps shop, blog and wiki: choose another"},
	} {
		got := (&inUseError{name: "orders", apps: tt.apps}).Error()
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("inUseError(%q) = %q; want it to begin %q", tt.apps, got, tt.want)
		}
	}
}
