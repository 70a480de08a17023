package databases

import (
	"testing"

	"github.com/gofastapi/gofastapi/controlplane/store"
)

func TestPick(t *testing.T) {
	a := &store.Database{ID: "a"}
	b := &store.Database{ID: "b", Default: true}
	c := &store.Database{ID: "c"}
	tests := []struct {
		name   string
		dbs    []*store.Database
		chosen string
		want   string
	}{
		{"chosen", []*store.Database{a, b, c}, "c", "c"},
		{"no choice: the default", []*store.Database{a, b, c}, "", "b"},
		{"a choice that is gone: the default", []*store.Database{a, b}, "c", "b"},
		{"no default: the first", []*store.Database{a, c}, "", "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := pick(tc.dbs, tc.chosen); got.ID != tc.want {
				t.Errorf("pick = %s, want %s", got.ID, tc.want)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"default": true, "orders-2": true, "a": true,
		"": false, "-x": false, "x-": false, "Orders": false, "a_b": false, "a.b": false,
		"a-very-long-name-that-goes-past-forty-chars": false,
	} {
		if err := checkName(name); (err == nil) != ok {
			t.Errorf("checkName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestParseID(t *testing.T) {
	for in, ok := range map[string]bool{`"abc"`: true, `3`: true, `{"$oid": "5f1e2d3c4b5a697887766554"}`: true, ``: false, `abc`: false} {
		if _, err := parseID(in); (err == nil) != ok {
			t.Errorf("parseID(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}

func TestURI(t *testing.T) {
	s := &Service{cfg: Config{MongoAddr: "127.0.0.1:4242"}}
	got := s.uri("alice", "p@ss/w:rd", "alice_1234")
	want := "mongodb://alice:p%40ss%2Fw%3Ard@127.0.0.1:4242/alice_1234?authSource=admin&authMechanism=SCRAM-SHA-256&maxPoolSize=10"
	if got != want {
		t.Errorf("uri = %s\nwant  %s", got, want)
	}
}
