package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// cmdSessions lists the caller's sessions, or revokes one:
// `gofastapi sessions [revoke ID]`.
func cmdSessions(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("sessions")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	c := mk()
	res, err := c.auth.ListSessions(ctx, connect.NewRequest(&v1.ListSessionsRequest{}))
	if err != nil {
		return explain(err)
	}
	sessions := res.Msg.GetSessions()
	switch {
	case fs.NArg() == 0:
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tLAST SEEN\tEXPIRES\tADDRESS\tCLIENT\t")
		for _, s := range sessions {
			cur := ""
			if s.GetCurrent() {
				cur = "(this session)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.GetId()[:12], s.GetCreatedAt().AsTime().Local().Format("2006-01-02 15:04"),
				s.GetLastSeenAt().AsTime().Local().Format("2006-01-02 15:04"), s.GetExpiresAt().AsTime().Local().Format("2006-01-02"),
				firstNonEmpty(s.GetClientAddress(), "-"), firstNonEmpty(s.GetUserAgent(), "-"), cur)
		}
		return tw.Flush()
	case fs.NArg() == 2 && fs.Arg(0) == "revoke":
		// The list shows 12 hex digits of each id; accept any unique prefix.
		var match []string
		for _, s := range sessions {
			if strings.HasPrefix(s.GetId(), fs.Arg(1)) {
				match = append(match, s.GetId())
			}
		}
		if len(match) != 1 {
			return fmt.Errorf("sessions revoke: %q matches %d of your sessions: give more of the id shown by `gofastapi sessions`", fs.Arg(1), len(match))
		}
		if _, err := c.auth.RevokeSession(ctx, connect.NewRequest(&v1.RevokeSessionRequest{Id: match[0]})); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "revoked session %s\n", match[0][:12])
		return nil
	}
	return errors.New("sessions: use `gofastapi sessions` to list them or `gofastapi sessions revoke ID` to end one")
}

// cmdPasswd changes the caller's password; the other sessions end.
func cmdPasswd(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newFlags("passwd")
	cur := fs.String("current", "", "current password (default: first line of stdin)")
	next := fs.String("new", "", "new password (default: next line of stdin)")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	r := bufio.NewReader(stdin)
	for _, p := range []*string{cur, next} {
		if *p == "" {
			line, err := r.ReadString('\n')
			if err != nil && line == "" {
				return errors.New("passwd: pass --current and --new, or write them on two lines of stdin")
			}
			*p = strings.TrimRight(line, "\r\n")
		}
	}
	res, err := mk().auth.ChangePassword(ctx, connect.NewRequest(&v1.ChangePasswordRequest{CurrentPassword: *cur, NewPassword: *next}))
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(stdout, "password changed; %d other session(s) ended\n", res.Msg.GetRevokedSessions())
	return nil
}
