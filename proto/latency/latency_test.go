package latency

import (
	"testing"
	"time"
)

func TestBucketHoldsItsValue(t *testing.T) {
	for _, us := range []uint64{0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 99, 100, 1000, 12345, 1 << 20, 99_999_999} {
		i := Bucket(time.Duration(us) * time.Microsecond)
		lo, hi := Bounds(i)
		if us < lo || us >= hi {
			t.Errorf("%d us: bucket %d = [%d, %d), which does not hold it", us, i, lo, hi)
		}
		if hi-lo > 1 && float64(hi-lo) > 0.25*float64(lo)+1e-9 {
			t.Errorf("%d us: bucket %d = [%d, %d) is wider than a quarter of its start", us, i, lo, hi)
		}
	}
}

func TestBucketsAreContiguous(t *testing.T) {
	_, prev := Bounds(0)
	for i := 1; i < NumBuckets; i++ {
		lo, hi := Bounds(i)
		if lo != prev || hi <= lo {
			t.Fatalf("bucket %d = [%d, %d), previous ended at %d", i, lo, hi, prev)
		}
		prev = hi
	}
	if got := Bucket(time.Hour); got != NumBuckets-1 {
		t.Errorf("Bucket(1h) = %d, want the last bucket %d", got, NumBuckets-1)
	}
	if got := Bucket(-time.Second); got != 0 {
		t.Errorf("Bucket(-1s) = %d, want 0", got)
	}
}

func TestQuantile(t *testing.T) {
	counts := make([]int64, NumBuckets)
	// 90 requests of 1 ms and 10 of 100 ms.
	counts[Bucket(time.Millisecond)] += 90
	counts[Bucket(100*time.Millisecond)] += 10
	// A quantile lands inside the bucket of the value it names.
	within := func(d time.Duration) (time.Duration, time.Duration) {
		lo, hi := Bounds(Bucket(d))
		return time.Duration(lo) * time.Microsecond, time.Duration(hi) * time.Microsecond
	}
	ms1lo, ms1hi := within(time.Millisecond)
	ms100lo, ms100hi := within(100 * time.Millisecond)
	tests := []struct {
		name     string
		q        float64
		min, max time.Duration
	}{
		{"p50", 0.5, ms1lo, ms1hi},
		{"p90", 0.9, ms1lo, ms1hi},
		{"p95", 0.95, ms100lo, ms100hi},
		{"p99", 0.99, ms100lo, ms100hi},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Quantile(counts, tt.q); got < tt.min || got > tt.max {
				t.Errorf("Quantile(%v) = %v, want within [%v, %v]", tt.q, got, tt.min, tt.max)
			}
		})
	}
	if got := Quantile(make([]int64, 3), 0.5); got != 0 {
		t.Errorf("Quantile of nothing = %v, want 0", got)
	}
}
