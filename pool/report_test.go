package pool

import (
	"slices"
	"testing"
)

// TestReporterKeepsOrder: records run in the order they were made, none is
// dropped when more are made than the queue holds, close returns after the
// last, and a record made after close runs at once.
func TestReporterKeepsOrder(t *testing.T) {
	r := newReporter()
	var got []int // written by the reporter's goroutine only, until close
	n := 3 * reportQueue
	for i := range n {
		r.report(func() { got = append(got, i) })
	}
	r.close()
	if len(got) != n || !slices.IsSorted(got) || got[0] != 0 || got[n-1] != n-1 {
		t.Fatalf("ran %d records (first %v, sorted %v), want 0..%d in order", len(got), got[:min(len(got), 3)], slices.IsSorted(got), n-1)
	}
	r.report(func() { got = append(got, n) })
	if got[len(got)-1] != n {
		t.Error("a record made after close did not run at once")
	}
	r.close() // idempotent
}
