// Package latency defines the fixed latency buckets that the gateway
// records requests into and the control plane reads percentiles from: both
// sides of the metrics contract (proto MetricsWindow.latency_buckets) must
// agree on what bucket i means, so it is defined once, here.
//
// Bucket i covers a range of microseconds whose width is a quarter of a
// power of two: the buckets are log-linear, like an HDR histogram with two
// bits of precision, so any value is known to within 12.5% of its size.
// Finding a bucket costs a few integer operations and no allocation.
package latency
