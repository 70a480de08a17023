package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("gofastapi "+name, flag.ContinueOnError)
	return fs
}

// parseInterspersed parses fs from args allowing flags after positional
// arguments (`deploy app.py --no-warm`, `env set app K=V --secret`), as
// every client command does; the positional ones are left in fs.Args().
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// cmdLogin runs signup and login: both end with a saved session.
func cmdLogin(ctx context.Context, name string, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newFlags(name)
	user := fs.String("username", "", "username (3-32 of a-z 0-9 _ -)")
	pass := fs.String("password", "", "password (default: read one line from stdin)")
	var email *string
	if name == "signup" {
		email = fs.String("email", "", "email address (optional)")
	}
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if *user == "" {
		return fmt.Errorf("%s: --username is required", name)
	}
	if *pass == "" {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("%s: no password: pass --password or write it on stdin", name)
		}
		*pass = strings.TrimRight(line, "\r\n")
	}
	c := mk()
	var token string
	var u *v1.User
	if name == "signup" {
		res, err := c.auth.Signup(ctx, connect.NewRequest(&v1.SignupRequest{Username: *user, Password: *pass, Email: *email}))
		if err != nil {
			return explain(err)
		}
		token, u = res.Msg.GetToken(), res.Msg.GetUser()
	} else {
		res, err := c.auth.Login(ctx, connect.NewRequest(&v1.LoginRequest{Username: *user, Password: *pass}))
		var ce *connect.Error
		if errors.As(err, &ce) && ce.Code() == connect.CodeUnauthenticated {
			// Not explain's "run gofastapi login": that is what failed.
			return errors.New(ce.Message())
		}
		if err != nil {
			return explain(err)
		}
		token, u = res.Msg.GetToken(), res.Msg.GetUser()
	}
	p, err := saveCredentials(credentials{Server: c.server, Token: token})
	if err != nil {
		return err
	}
	role := ""
	if u.GetAdmin() {
		role = " (admin)"
	}
	fmt.Fprintf(stdout, "logged in to %s as %s%s; session saved in %s\n", c.server, u.GetUsername(), role, p)
	return nil
}

func cmdLogout(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("logout")
	all := fs.Bool("all", false, "end all your sessions, everywhere")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	c := mk()
	res, err := c.auth.Logout(ctx, connect.NewRequest(&v1.LogoutRequest{Everywhere: *all}))
	if err != nil {
		return explain(err)
	}
	if p, err := credentialsPath(); err == nil {
		os.Remove(p)
	}
	if *all {
		fmt.Fprintf(stdout, "logged out everywhere (%d session(s) ended)\n", res.Msg.GetRevoked())
		return nil
	}
	fmt.Fprintln(stdout, "logged out")
	return nil
}

func cmdWhoami(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("whoami")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	res, err := mk().auth.Me(ctx, connect.NewRequest(&v1.MeRequest{}))
	if err != nil {
		return explain(err)
	}
	fmt.Fprintln(stdout, res.Msg.GetUser().GetUsername())
	return nil
}

// cmdDeploy creates the app if needed, deploys the files and prints each
// stage; the last line is the app's URL.
func cmdDeploy(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("deploy")
	name := fs.String("name", "", "app name (default: the first file's base name)")
	entry := fs.String("entrypoint", "", "file that defines `app` (default: app.py, or the only file)")
	noWarm := fs.Bool("no-warm", false, "skip the warm stage: the app's first request starts it")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() == 0 {
		return errors.New("deploy: name at least one file, for example: gofastapi deploy app.py")
	}
	var files []*v1.File
	for _, p := range fs.Args() {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, &v1.File{Name: bundleName(p), Content: b})
	}
	if *name == "" {
		base := filepath.Base(files[0].GetName())
		*name = strings.ToLower(strings.TrimSuffix(base, filepath.Ext(base)))
		*name = strings.ReplaceAll(*name, "_", "-")
	}
	if *entry == "" && len(files) == 1 {
		*entry = files[0].GetName()
	}
	c := mk()
	if _, err := c.apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: *name})); connect.CodeOf(err) == connect.CodeNotFound {
		if _, err := c.apps.CreateApp(ctx, connect.NewRequest(&v1.CreateAppRequest{Name: *name, Entrypoint: *entry})); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "created app %s\n", *name)
	} else if err != nil {
		return explain(err)
	}
	return deployAndPrint(ctx, c, &v1.DeployRequest{IdOrName: *name, Files: files, Entrypoint: *entry, NoWarm: *noWarm}, stdout)
}

// deployAndPrint runs a deploy and prints each stage; the last line is the
// app's URL.
func deployAndPrint(ctx context.Context, c *client, req *v1.DeployRequest, stdout io.Writer) error {
	stream, err := c.apps.Deploy(ctx, connect.NewRequest(req))
	if err != nil {
		return explain(err)
	}
	defer stream.Close()
	url := ""
	for stream.Receive() {
		m := stream.Msg()
		stage := strings.ToLower(strings.TrimPrefix(m.GetStage().String(), "DEPLOY_STAGE_"))
		fmt.Fprintf(stdout, "%-9s %s (%s)\n", stage, m.GetMessage(), time.Duration(m.GetElapsedMicros())*time.Microsecond)
		if m.GetUrl() != "" {
			url = m.GetUrl()
		}
	}
	if err := stream.Err(); err != nil {
		return explain(err)
	}
	fmt.Fprintln(stdout, url)
	return nil
}

func cmdApps(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("apps")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	res, err := mk().apps.ListApps(ctx, connect.NewRequest(&v1.ListAppsRequest{}))
	if err != nil {
		return explain(err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tURL")
	for _, a := range res.Msg.GetApps() {
		v := a.GetDeployedVersion()
		if len(v) > 12 {
			v = v[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", a.GetName(), firstNonEmpty(v, "-"), firstNonEmpty(a.GetUrl(), "-"))
	}
	return tw.Flush()
}

func cmdLogs(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("logs")
	n := fs.Int("n", 200, "number of lines")
	follow := fs.Bool("f", false, "follow: print new lines as they are written, until interrupted")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return errors.New("logs: name one app: gofastapi logs [-f] NAME")
	}
	stream, err := mk().watch.WatchLogs(ctx, connect.NewRequest(&v1.WatchLogsRequest{IdOrName: fs.Arg(0), Limit: int32(*n), Follow: *follow}))
	if err != nil {
		return explain(err)
	}
	defer stream.Close()
	for stream.Receive() {
		if l := stream.Msg().GetLine(); l != nil {
			fmt.Fprintf(stdout, "%s %-8s %s\n", l.GetTime().AsTime().Local().Format("2006-01-02 15:04:05.000"), l.GetStream(), l.GetText())
		}
	}
	return streamEnd(ctx, stream.Err())
}

func cmdDelete(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("delete")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return errors.New("delete: name one app: gofastapi delete NAME")
	}
	if _, err := mk().apps.DeleteApp(ctx, connect.NewRequest(&v1.DeleteAppRequest{IdOrName: fs.Arg(0)})); err != nil {
		return explain(err)
	}
	fmt.Fprintf(stdout, "deleted %s\n", fs.Arg(0))
	return nil
}

func cmdColdStarts(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("coldstarts")
	n := fs.Int("n", 20, "number of cold starts")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return errors.New("coldstarts: name one app: gofastapi coldstarts NAME")
	}
	res, err := mk().apps.ListColdStarts(ctx, connect.NewRequest(&v1.ListColdStartsRequest{IdOrName: fs.Arg(0), Limit: int32(*n)}))
	if err != nil {
		return explain(err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TIME\tVERSION\t"+coldStartHeader)
	for _, c := range res.Msg.GetColdStarts() {
		v := c.GetVersion()
		if len(v) > 12 {
			v = v[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.GetTime().AsTime().Local().Format("15:04:05.000"), v, coldStartCells(c))
	}
	return tw.Flush()
}

// coldStartHeader and coldStartCells are the columns of a cold start's
// phases (and its error) in the CLI's tables, tab-separated.
const coldStartHeader = "TOTAL\tCLAIM\tFETCH\tVERIFY\tWRITE\tDEPS\tLOAD\tIMPORT\tCOMPILED\tFIRST BYTE\t ERROR"

func coldStartCells(c *v1.ColdStart) string {
	fetch, verify := micros(c.GetFetchMicros()), micros(c.GetVerifyMicros())
	if c.GetCached() {
		// The files were linked from the host's cache (WRITE).
		fetch, verify = "cached", "-"
	}
	deps := "-" // the app declares none
	switch {
	case c.GetDepsCached():
		deps = "on host"
	case c.GetDepsMicros() > 0:
		deps = micros(c.GetDepsMicros())
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t %s",
		micros(c.GetTotalMicros()), micros(c.GetClaimMicros()), fetch, verify,
		micros(c.GetWriteMicros()), deps, micros(c.GetLoadMicros()), micros(c.GetImportMicros()), c.GetCompiledModules(),
		micros(c.GetFirstByteMicros()), c.GetError())
}

func micros(n int64) string { return fmt.Sprintf("%.1fms", float64(n)/1000) }

// bundleName is the name a file given on the command line gets in the app:
// its relative path as typed (so `pkg/models.py` stays in its package), or
// its base name when the path is absolute or leaves the current directory.
func bundleName(p string) string {
	c := filepath.ToSlash(filepath.Clean(p))
	if filepath.IsAbs(p) || c == ".." || strings.HasPrefix(c, "../") {
		return filepath.Base(p)
	}
	return c
}

// cmdOpen opens an app's URL (or its /docs) in a browser: $BROWSER if set,
// else the desktop's opener. With --print, or when there is no browser to
// run, it prints the URL instead, for scripts.
func cmdOpen(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("open")
	docs := fs.Bool("docs", false, "open the app's OpenAPI docs (/docs)")
	printURL := fs.Bool("print", false, "print the URL instead of opening it")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return errors.New("open: name one app: gofastapi open [--docs] [--print] NAME")
	}
	name := fs.Arg(0)
	res, err := mk().apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: name}))
	if err != nil {
		return explain(err)
	}
	url := res.Msg.GetApp().GetUrl()
	if url == "" {
		return fmt.Errorf("open: app %s is not deployed yet: deploy it first (gofastapi deploy --name %s FILE...)", name, name)
	}
	if *docs {
		url = strings.TrimRight(url, "/") + "/docs"
	}
	browser := browserCommand()
	if *printURL || browser == "" {
		fmt.Fprintln(stdout, url)
		return nil
	}
	if out, err := exec.CommandContext(ctx, browser, url).CombinedOutput(); err != nil {
		return fmt.Errorf("open: %s %s: %v %s(print the URL with gofastapi open --print %s)", browser, url, err, out, name)
	}
	fmt.Fprintln(stdout, "opened", url)
	return nil
}

// browserCommand is the program that opens a URL: the first of $BROWSER's
// colon-separated commands, else xdg-open, or open on macOS, when
// installed; "" when there is none.
func browserCommand() string {
	if b, _, _ := strings.Cut(os.Getenv("BROWSER"), ":"); b != "" {
		return b
	}
	opener := "xdg-open"
	if runtime.GOOS == "darwin" {
		opener = "open"
	}
	if p, err := exec.LookPath(opener); err == nil {
		return p
	}
	return ""
}

// cmdDomains lists, adds and removes an app's custom domains.
func cmdDomains(ctx context.Context, args []string, stdout io.Writer) error {
	const use = "domains: gofastapi domains NAME | domains add NAME DOMAIN | domains remove NAME DOMAIN"
	fs := newFlags("domains")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	a := fs.Args()
	var app *v1.App
	switch {
	case len(a) == 1:
		res, err := mk().apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: a[0]}))
		if err != nil {
			return explain(err)
		}
		app = res.Msg.GetApp()
	case len(a) == 3 && a[0] == "add":
		res, err := mk().apps.AddDomain(ctx, connect.NewRequest(&v1.AddDomainRequest{IdOrName: a[1], Domain: a[2]}))
		if err != nil {
			return explain(err)
		}
		app = res.Msg.GetApp()
	case len(a) == 3 && a[0] == "remove":
		res, err := mk().apps.RemoveDomain(ctx, connect.NewRequest(&v1.RemoveDomainRequest{IdOrName: a[1], Domain: a[2]}))
		if err != nil {
			return explain(err)
		}
		app = res.Msg.GetApp()
	default:
		return errors.New(use)
	}
	if len(app.GetDomains()) == 0 {
		fmt.Fprintf(stdout, "%s has no custom domains\n", app.GetName())
	}
	for _, d := range app.GetDomains() {
		if slices.Contains(app.GetDomainsFailing(), d) {
			fmt.Fprintf(stdout, "%s  (its CNAME record was gone or pointed elsewhere at the last check; 3 such checks in a row remove it)\n", d)
			continue
		}
		fmt.Fprintln(stdout, d)
	}
	return nil
}
