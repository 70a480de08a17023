package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gofastapi/gofastapi/controlplane/embedded/embeddedtest"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want Rate
		err  bool
	}{
		{in: "20/1m", want: Rate{N: 20, Per: time.Minute}},
		{in: "5/30s", want: Rate{N: 5, Per: 30 * time.Second}},
		{in: "0", want: Rate{}},
		{in: "20", err: true},
		{in: "0/1m", err: true},
		{in: "-1/1m", err: true},
		{in: "3/10ms", err: true},
		{in: "x/1m", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("ParseRate(%q) error = %v, want error %v", tt.in, err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseRate(%q) (-want +got):\n%s", tt.in, diff)
			}
			if !tt.err && got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestAllow(t *testing.T) {
	ctx := context.Background()
	_, rdb := embeddedtest.Redis(t)
	l := New(rdb)
	r := Rate{N: 3, Per: time.Minute}

	var got []bool
	for range 5 {
		ok, retry, err := l.Allow(ctx, "login:user:alice", r)
		if err != nil {
			t.Fatal(err)
		}
		if !ok && (retry <= 0 || retry > time.Minute) {
			t.Errorf("denied with retry %v, want within (0, 1m]", retry)
		}
		got = append(got, ok)
	}
	if diff := cmp.Diff([]bool{true, true, true, false, false}, got); diff != "" {
		t.Errorf("Allow results (-want +got):\n%s", diff)
	}
	if ok, _, _ := l.Allow(ctx, "login:user:bob", r); !ok {
		t.Error("another key shares alice's counter")
	}
	if ok, _, _ := l.Allow(ctx, "anything", Rate{}); !ok {
		t.Error("the zero Rate limited an event")
	}

	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("key %s has TTL %v: every counter must expire with its window", k, ttl)
		}
		if k != Key("login:user:alice") && k != Key("login:user:bob") {
			t.Errorf("unexpected key %s", k)
		}
	}
}
