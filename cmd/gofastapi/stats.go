package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// metricsClient is the MetricsService client of c.
func (c *client) metrics() gofastapiv1connect.MetricsServiceClient {
	return gofastapiv1connect.NewMetricsServiceClient(&http.Client{Timeout: time.Minute}, c.server,
		connect.WithInterceptors(bearer(c.token)))
}

// cmdStats prints an app's health, its requests over the last 24 hours
// and per minute, and its recent cold starts.
func cmdStats(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("stats")
	minutes := fs.Int("minutes", 15, "list the last N minutes (those with requests)")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return errors.New("stats: name one app: gofastapi stats NAME")
	}
	m := mk().metrics()
	name := fs.Arg(0)
	health, err := m.GetHealth(ctx, connect.NewRequest(&v1.GetHealthRequest{IdOrName: name}))
	if err != nil {
		return explain(err)
	}
	stats, err := m.GetAppStats(ctx, connect.NewRequest(&v1.GetAppStatsRequest{IdOrName: name, Minutes: int32(*minutes)}))
	if err != nil {
		return explain(err)
	}
	h := health.Msg
	fmt.Fprintf(stdout, "health    %s: %s\n", healthWord(h.GetStatus()), h.GetReason())
	s := stats.Msg.GetLast_24H()
	fmt.Fprintf(stdout, "last 24h  %d requests: %d 2xx, %d 4xx, %d 5xx; latency avg %s, p50 %s, p95 %s, p99 %s\n",
		s.GetRequests(), s.GetStatus_2Xx(), s.GetStatus_4Xx(), s.GetStatus_5Xx(),
		millis(s.GetAvgMs()), millis(s.GetP50Ms()), millis(s.GetP95Ms()), millis(s.GetP99Ms()))
	fmt.Fprintf(stdout, "cold      %d cold starts in the last 24h\n", stats.Msg.GetColdStarts_24H())
	if ms := stats.Msg.GetMinutes(); len(ms) > 0 {
		fmt.Fprintln(stdout)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "MINUTE\tREQUESTS\t2XX\t4XX\t5XX\tAVG\tP50\tP95\tP99\t")
		for _, m := range ms {
			s := m.GetStats()
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", m.GetMinute().AsTime().Local().Format("15:04"),
				s.GetRequests(), s.GetStatus_2Xx(), s.GetStatus_4Xx(), s.GetStatus_5Xx(),
				millis(s.GetAvgMs()), millis(s.GetP50Ms()), millis(s.GetP95Ms()), millis(s.GetP99Ms()))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if cs := stats.Msg.GetRecentColdStarts(); len(cs) > 0 {
		fmt.Fprintln(stdout)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "COLD START\t"+coldStartHeader)
		for _, c := range cs {
			fmt.Fprintf(tw, "%s\t%s\n", c.GetTime().AsTime().Local().Format("15:04:05"), coldStartCells(c))
		}
		return tw.Flush()
	}
	return nil
}

// cmdErrors prints an app's latest error answers, with the app's
// traceback under each 5xx that has one.
func cmdErrors(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("errors")
	n := fs.Int("n", 50, "number of errors")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return errors.New("errors: name one app: gofastapi errors NAME")
	}
	res, err := mk().metrics().ListErrors(ctx, connect.NewRequest(&v1.ListErrorsRequest{IdOrName: fs.Arg(0), Limit: int32(*n)}))
	if err != nil {
		return explain(err)
	}
	es := res.Msg.GetErrors()
	if len(es) == 0 {
		fmt.Fprintln(stdout, "no errors in the last 24 hours")
		return nil
	}
	for _, e := range es {
		class := "client"
		if e.GetClass() == v1.ErrorClass_ERROR_CLASS_SERVER {
			class = "server"
		}
		fmt.Fprintf(stdout, "%s  %d %s  %s %s  request %s\n", e.GetTime().AsTime().Local().Format("2006-01-02 15:04:05.000"),
			e.GetStatus(), class, e.GetMethod(), e.GetPath(), e.GetRequestId())
		for _, l := range e.GetTraceback() {
			fmt.Fprintln(stdout, "    "+strings.TrimRight(l, " "))
		}
	}
	return nil
}

func healthWord(s v1.HealthStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "HEALTH_STATUS_"))
}

func millis(ms float64) string { return fmt.Sprintf("%.1fms", ms) }
