package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

const adminUsage = `gofastapi admin: administer the platform (needs an admin's session).

  gofastapi admin users                                    users with apps, running apps, last activity, limits
  gofastapi admin create-user --username U [--password P] [--email E] [--admin]
  gofastapi admin promote USER                             make USER an admin
  gofastapi admin demote USER                              take admin away from USER
  gofastapi admin delete-user [--yes] USER                 delete USER and everything they own
  gofastapi admin limits [--tier T] [--apps N] [--databases N] [--storage SIZE] [--requests N] USER
  gofastapi admin settings [--public-signups on|off] [--allow M,..] [--disallow M,..] [--allow-packages P,..] [--disallow-packages P,..]
                           [--set-imports M,..|'*'] [--reset-imports] [--set-packages P,..|'*'] [--reset-packages]
  gofastapi admin stats                                    platform figures
  gofastapi admin activity [-n N]                          recent activity, newest first
`

// cmdAdmin dispatches `gofastapi admin SUBCOMMAND`.
func cmdAdmin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminUsage)
		return errUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "users":
		return adminUsers(ctx, rest, stdout)
	case "create-user":
		return adminCreateUser(ctx, rest, stdin, stdout)
	case "promote", "demote":
		return adminSetAdmin(ctx, sub, rest, stdout)
	case "delete-user":
		return adminDeleteUser(ctx, rest, stdin, stdout)
	case "limits":
		return adminLimits(ctx, rest, stdout)
	case "settings":
		return adminSettings(ctx, rest, stdout)
	case "stats":
		return adminStats(ctx, rest, stdout)
	case "activity":
		return adminActivity(ctx, rest, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, adminUsage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown admin command %q\n\n%s", sub, adminUsage)
	return errUsage
}

// adminFlags is clientFlags for an admin subcommand: it returns the
// AdminService client.
func adminFlags(name string) (*flag.FlagSet, func() gofastapiv1connect.AdminServiceClient) {
	fs := newFlags("admin " + name)
	mk := clientFlags(fs)
	return fs, func() gofastapiv1connect.AdminServiceClient {
		c := mk()
		return gofastapiv1connect.NewAdminServiceClient(&http.Client{Timeout: 5 * time.Minute}, c.server, connect.WithInterceptors(bearer(c.token)))
	}
}

// oneUser parses fs and returns its one positional argument, a user.
func oneUser(fs *flag.FlagSet, args []string) (string, error) {
	if err := parseInterspersed(fs, args); err != nil {
		return "", errUsage
	}
	if fs.NArg() != 1 {
		return "", fmt.Errorf("%s: name one user: gofastapi %s USER", fs.Name(), fs.Name())
	}
	return fs.Arg(0), nil
}

func adminUsers(ctx context.Context, args []string, stdout io.Writer) error {
	fs, mk := adminFlags("users")
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	res, err := mk().ListUsers(ctx, connect.NewRequest(&v1.ListUsersRequest{}))
	if err != nil {
		return explain(err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tROLE\tAPPS\tRUNNING\tLAST ACTIVE\tCREATED\tLIMITS")
	for _, s := range res.Msg.GetUsers() {
		u := s.GetUser()
		role := "user"
		if u.GetAdmin() {
			role = "admin"
		}
		last := "never"
		if s.GetLastActiveAt() != nil {
			last = s.GetLastActiveAt().AsTime().Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", u.GetUsername(), role, s.GetAppCount(), s.GetRunningApps(), last,
			u.GetCreatedAt().AsTime().Local().Format("2006-01-02 15:04"), limitsText(s.GetLimits()))
	}
	return tw.Flush()
}

func adminCreateUser(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs, mk := adminFlags("create-user")
	user := fs.String("username", "", "username (3-32 of a-z 0-9 _ -)")
	pass := fs.String("password", "", "password (default: read one line from stdin)")
	email := fs.String("email", "", "email address (optional)")
	adm := fs.Bool("admin", false, "make the user an admin")
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if *user == "" {
		return errors.New("admin create-user: --username is required")
	}
	if *pass == "" {
		p, err := readLine(stdin)
		if err != nil {
			return fmt.Errorf("admin create-user: no password: pass --password or write it on stdin")
		}
		*pass = p
	}
	res, err := mk().CreateUser(ctx, connect.NewRequest(&v1.CreateUserRequest{Username: *user, Password: *pass, Email: *email, Admin: *adm}))
	if err != nil {
		return explain(err)
	}
	role := ""
	if res.Msg.GetUser().GetAdmin() {
		role = " (admin)"
	}
	fmt.Fprintf(stdout, "created user %s%s\n", res.Msg.GetUser().GetUsername(), role)
	return nil
}

func adminSetAdmin(ctx context.Context, sub string, args []string, stdout io.Writer) error {
	fs, mk := adminFlags(sub)
	user, err := oneUser(fs, args)
	if err != nil {
		return err
	}
	res, err := mk().SetAdmin(ctx, connect.NewRequest(&v1.SetAdminRequest{User: user, Admin: sub == "promote"}))
	if err != nil {
		return explain(err)
	}
	name := res.Msg.GetUser().GetUsername()
	switch {
	case !res.Msg.GetChanged() && sub == "promote":
		fmt.Fprintf(stdout, "%s is already an admin\n", name)
	case !res.Msg.GetChanged():
		fmt.Fprintf(stdout, "%s is not an admin\n", name)
	case sub == "promote":
		fmt.Fprintf(stdout, "%s is now an admin\n", name)
	default:
		fmt.Fprintf(stdout, "%s is no longer an admin\n", name)
	}
	return nil
}

func adminDeleteUser(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs, mk := adminFlags("delete-user")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	user, err := oneUser(fs, args)
	if err != nil {
		return err
	}
	if !*yes {
		fmt.Fprintf(stdout, "This deletes %s and all their apps, versions, logs and sessions. Type the username to confirm: ", user)
		line, err := readLine(stdin)
		if err != nil || line != user {
			return errors.New("admin delete-user: not confirmed; nothing was deleted")
		}
	}
	res, err := mk().DeleteUser(ctx, connect.NewRequest(&v1.DeleteUserRequest{User: user}))
	if err != nil {
		return explain(err)
	}
	var parts []string
	for _, r := range res.Msg.GetRemoved() {
		parts = append(parts, fmt.Sprintf("%d %s", r.GetCount(), r.GetKind()))
	}
	fmt.Fprintf(stdout, "deleted %s: removed %s\n", res.Msg.GetUsername(), strings.Join(parts, ", "))
	return nil
}

func adminLimits(ctx context.Context, args []string, stdout io.Writer) error {
	fs, mk := adminFlags("limits")
	tier := fs.String("tier", "", "start from a tier: free, pro or unlimited")
	apps := fs.Int("apps", 0, "most apps (0: no limit)")
	dbs := fs.Int("databases", 0, "most databases (0: no limit)")
	storage := fs.String("storage", "", "most database storage, such as 512M or 10G (0: no limit)")
	requests := fs.Int("requests", 0, "most requests a minute to the user's apps together, at each gateway (0: no limit)")
	user, err := oneUser(fs, args)
	if err != nil {
		return err
	}
	req := &v1.SetLimitsRequest{User: user, Tier: *tier}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, c := range []struct {
		flag string
		n    int
		to   **int32
	}{{"apps", *apps, &req.Apps}, {"databases", *dbs, &req.Databases}, {"requests", *requests, &req.RequestsPerMinute}} {
		if !set[c.flag] {
			continue
		}
		if c.n < 0 || c.n > math.MaxInt32 {
			return fmt.Errorf("admin limits: --%s is a count, 0 (no limit) or more, not %d", c.flag, c.n)
		}
		*c.to = ptr(int32(c.n))
	}
	if *storage != "" {
		n, err := parseSize(*storage)
		if err != nil {
			return fmt.Errorf("admin limits: --storage: %w", err)
		}
		req.StorageBytes = &n
	}
	res, err := mk().SetLimits(ctx, connect.NewRequest(req))
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(stdout, "limits of %s: %s\n", user, limitsText(res.Msg.GetLimits()))
	return nil
}

func adminSettings(ctx context.Context, args []string, stdout io.Writer) error {
	fs, mk := adminFlags("settings")
	signups := fs.String("public-signups", "", "on: anyone may sign up; off: only admins create users")
	allow := fs.String("allow", "", "comma-separated modules to add to the import allowlist")
	disallow := fs.String("disallow", "", "comma-separated modules to remove from the import allowlist")
	set := fs.String("set-imports", "", "replace the import allowlist with these comma-separated modules ('*' allows every import)")
	reset := fs.Bool("reset-imports", false, "go back to the default import allowlist")
	allowPkgs := fs.String("allow-packages", "", "comma-separated packages to add to the dependency allowlist (what apps may declare in requirements.txt)")
	disallowPkgs := fs.String("disallow-packages", "", "comma-separated packages to remove from the dependency allowlist")
	setPkgs := fs.String("set-packages", "", "replace the dependency allowlist with these comma-separated packages ('*' allows every package)")
	resetPkgs := fs.Bool("reset-packages", false, "go back to the default dependency allowlist")
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	c := mk()
	req := &v1.UpdateSettingsRequest{AddImports: splitList(*allow), RemoveImports: splitList(*disallow), ResetAllowedImports: *reset,
		AddPackages: splitList(*allowPkgs), RemovePackages: splitList(*disallowPkgs), ResetAllowedPackages: *resetPkgs}
	switch *signups {
	case "":
	case "on", "true", "yes":
		req.PublicSignups = ptr(true)
	case "off", "false", "no":
		req.PublicSignups = ptr(false)
	default:
		return fmt.Errorf("admin settings: --public-signups is on or off, not %q", *signups)
	}
	if *set != "" {
		req.AllowedImports = &v1.ImportList{Modules: splitList(*set)}
	}
	if *setPkgs != "" {
		req.AllowedPackages = &v1.PackageList{Packages: splitList(*setPkgs)}
	}
	var st *v1.Settings
	if proto.Equal(req, &v1.UpdateSettingsRequest{}) {
		res, err := c.GetSettings(ctx, connect.NewRequest(&v1.GetSettingsRequest{}))
		if err != nil {
			return explain(err)
		}
		st = res.Msg.GetSettings()
	} else {
		res, err := c.UpdateSettings(ctx, connect.NewRequest(req))
		if err != nil {
			return explain(err)
		}
		st = res.Msg.GetSettings()
	}
	signupsText := "off (only admins create users)"
	if st.GetPublicSignups() {
		signupsText = "on"
	}
	source := "the defaults"
	if st.GetAllowedImportsCustomized() {
		source = "set by an admin"
	}
	fmt.Fprintf(stdout, "public signups:  %s\n", signupsText)
	fmt.Fprintf(stdout, "allowed imports: %s (%s)\n", strings.Join(st.GetAllowedImports(), " "), source)
	fmt.Fprintf(stdout, "default imports: %s\n", strings.Join(st.GetDefaultAllowedImports(), " "))
	source = "the defaults"
	if st.GetAllowedPackagesCustomized() {
		source = "set by an admin"
	}
	index := st.GetPackageIndex()
	if index == "" {
		index = "none (start the platform with --package-index for apps to declare dependencies)"
	}
	fmt.Fprintf(stdout, "allowed packages: %s (%s)\n", strings.Join(st.GetAllowedPackages(), " "), source)
	fmt.Fprintf(stdout, "package index:   %s\n", index)
	return nil
}

func adminStats(ctx context.Context, args []string, stdout io.Writer) error {
	fs, mk := adminFlags("stats")
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	res, err := mk().GetStats(ctx, connect.NewRequest(&v1.GetStatsRequest{}))
	if err != nil {
		return explain(err)
	}
	m := res.Msg
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, row := range []struct {
		k string
		v any
	}{
		{"users", m.GetUsers()}, {"admins", m.GetAdmins()}, {"apps", m.GetApps()}, {"deployed apps", m.GetDeployedApps()},
		{"running apps", m.GetRunningApps()}, {"warm runners", m.GetWarmRunners()}, {"templates", m.GetTemplates()},
		{"database storage", sizeText(m.GetDatabaseStorageBytes())}, {"active sessions", m.GetActiveSessions()},
		{"user databases", m.GetUserDatabases()}, {"user database storage", sizeText(m.GetUserDatabaseStorageBytes())},
	} {
		fmt.Fprintf(tw, "%s\t%v\n", row.k, row.v)
	}
	return tw.Flush()
}

func adminActivity(ctx context.Context, args []string, stdout io.Writer) error {
	fs, mk := adminFlags("activity")
	n := fs.Int("n", 50, "number of entries (at most 500)")
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	res, err := mk().ListActivity(ctx, connect.NewRequest(&v1.ListActivityRequest{Limit: int32(*n)}))
	if err != nil {
		return explain(err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tKIND\tSUBJECT\tDETAIL")
	for _, e := range res.Msg.GetEvents() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.GetTime().AsTime().Local().Format("2006-01-02 15:04:05"), e.GetActor(), e.GetKind(),
			firstNonEmpty(e.GetSubject(), "-"), e.GetDetail())
	}
	return tw.Flush()
}

func limitsText(l *v1.Limits) string {
	n := func(v int64) string {
		if v == 0 {
			return "unlimited"
		}
		return strconv.FormatInt(v, 10)
	}
	storage := "unlimited"
	if l.GetStorageBytes() > 0 {
		storage = sizeText(l.GetStorageBytes())
	}
	return fmt.Sprintf("%s: apps %s, databases %s, storage %s, requests a minute %s", l.GetTier(), n(int64(l.GetApps())), n(int64(l.GetDatabases())),
		storage, n(int64(l.GetRequestsPerMinute())))
}

// parseSize reads a byte count with an optional binary unit: 512M, 10G,
// 1.5GiB, 1048576.
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := 1.0
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a size such as 512M, 10G or 0", s)
	}
	return int64(f * mult), nil
}

func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func ptr[T any](v T) *T { return &v }
