package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestQuieter passes on a component's errors, with its attributes, and
// drops the rest of what it says, while the platform's own logger goes on
// at its level.
func TestQuieter(t *testing.T) {
	var buf bytes.Buffer
	l, err := newLogger(&buf, "text", "info")
	if err != nil {
		t.Fatal(err)
	}
	q := quieter(l.With("component", "ferretdb"), slog.LevelError)
	q.Info("connection started")
	q.Warn("response message")
	q.WithGroup("g").Warn("grouped warning")
	q.Error("disk full")
	l.Warn("platform warning")
	got := buf.String()
	for _, want := range []string{"msg=\"disk full\" component=ferretdb", "platform warning"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	for _, dropped := range []string{"connection started", "response message", "grouped warning"} {
		if strings.Contains(got, dropped) {
			t.Errorf("log has %q:\n%s", dropped, got)
		}
	}
}
