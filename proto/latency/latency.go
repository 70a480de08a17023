package latency

import (
	"math/bits"
	"time"
)

// subBits is the number of bits of precision below the leading one.
const subBits = 2

// NumBuckets is the number of buckets. The last one also holds every
// latency past its lower bound (about 2 minutes).
const NumBuckets = 28 << subBits

// Bucket returns the bucket that holds latency d. Negative latencies count
// as zero.
func Bucket(d time.Duration) int {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	if us < 1<<subBits {
		return int(us) // 0..3 microseconds, exact
	}
	e := bits.Len64(us) - 1 // us is in [2^e, 2^(e+1))
	i := (e-subBits+1)<<subBits + int(us>>(e-subBits)&(1<<subBits-1))
	if i >= NumBuckets {
		return NumBuckets - 1
	}
	return i
}

// Bounds returns the range of microseconds [lo, hi) that bucket i holds.
// The last bucket's hi is where it would end, though it holds every larger
// latency too.
func Bounds(i int) (lo, hi uint64) {
	if i < 1<<subBits {
		return uint64(i), uint64(i) + 1
	}
	e := i>>subBits + subBits - 1
	sub := uint64(i & (1<<subBits - 1))
	width := uint64(1) << (e - subBits)
	lo = uint64(1)<<e + sub*width
	return lo, lo + width
}

// Quantile returns the latency below which a fraction q (0 < q <= 1) of
// the counts fall, interpolating linearly inside the bucket it lands in,
// and 0 when counts are all zero. counts[i] is the count of bucket i;
// counts may be shorter than NumBuckets.
func Quantile(counts []int64, q float64) time.Duration {
	var total int64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total) // the rank-th smallest value, 1-based
	var seen int64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if float64(seen+c) >= rank {
			lo, hi := Bounds(i)
			frac := (rank - float64(seen)) / float64(c)
			us := float64(lo) + frac*float64(hi-lo)
			return time.Duration(us * float64(time.Microsecond))
		}
		seen += c
	}
	lo, _ := Bounds(len(counts) - 1)
	return time.Duration(lo) * time.Microsecond
}
