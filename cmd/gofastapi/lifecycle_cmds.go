package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/secretbox"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// streamEnd is the result of a stream that ended with err: an interrupt
// (ctx cancelled) is a normal end of a followed stream.
func streamEnd(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return nil
	}
	return explain(err)
}

func cmdVersions(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("versions")
	n := fs.Int("n", 20, "number of versions")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return errors.New("versions: name one app: gofastapi versions NAME")
	}
	res, err := mk().apps.ListVersions(ctx, connect.NewRequest(&v1.ListVersionsRequest{IdOrName: fs.Arg(0), Limit: int32(*n)}))
	if err != nil {
		return explain(err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tDEPLOYED\tFILES\tPACKAGES\t")
	for _, v := range res.Msg.GetVersions() {
		var names []string
		for _, f := range v.GetFiles() {
			names = append(names, f.GetName())
		}
		cur := ""
		if v.GetCurrent() {
			cur = "(current)"
		}
		var pkgs []string
		for _, p := range v.GetPackages() {
			pkgs = append(pkgs, p.GetName()+"=="+p.GetVersion())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", shortHash(v.GetVersion()), v.GetCreatedAt().AsTime().Local().Format("2006-01-02 15:04:05"),
			strings.Join(names, " "), firstNonEmpty(strings.Join(pkgs, " "), "-"), cur)
	}
	return tw.Flush()
}

func cmdRollback(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("rollback")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return errors.New("rollback: gofastapi rollback NAME [VERSION] (default: the version deployed before the current one)")
	}
	res, err := mk().apps.Rollback(ctx, connect.NewRequest(&v1.RollbackRequest{IdOrName: fs.Arg(0), Version: fs.Arg(1)}))
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(stdout, "%s now serves version %s (was %s)\n", fs.Arg(0), shortHash(res.Msg.GetVersion()), shortHash(res.Msg.GetPrevious()))
	return nil
}

func cmdClone(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("clone")
	draft := fs.Bool("draft", false, "clone the saved draft instead of the deployed version")
	noDeploy := fs.Bool("no-deploy", false, "create the clone without deploying it")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() != 2 {
		return errors.New("clone: gofastapi clone NAME NEW")
	}
	src := v1.CloneSource_CLONE_SOURCE_DEPLOYED
	if *draft {
		src = v1.CloneSource_CLONE_SOURCE_DRAFT
	}
	res, err := mk().apps.CloneApp(ctx, connect.NewRequest(&v1.CloneAppRequest{IdOrName: fs.Arg(0), NewName: fs.Arg(1), Source: src, Deploy: !*noDeploy}))
	if err != nil {
		return explain(err)
	}
	a := res.Msg.GetApp()
	fmt.Fprintf(stdout, "cloned %s to %s\n", fs.Arg(0), a.GetName())
	if a.GetUrl() != "" {
		fmt.Fprintln(stdout, a.GetUrl())
	}
	return nil
}

func cmdEnv(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("env")
	secret := fs.Bool("secret", false, "with set: store the values as secrets (encrypted, never shown again)")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	rest := fs.Args()
	usage := errors.New("env: gofastapi env NAME | env set NAME KEY=VALUE... [--secret] | env unset NAME KEY...")
	c := mk()
	var vars []*v1.EnvVar
	switch {
	case len(rest) == 1:
		res, err := c.apps.ListEnv(ctx, connect.NewRequest(&v1.ListEnvRequest{IdOrName: rest[0]}))
		if err != nil {
			return explain(err)
		}
		vars = res.Msg.GetVars()
	case len(rest) >= 3 && rest[0] == "set":
		req := &v1.SetEnvRequest{IdOrName: rest[1]}
		for _, kv := range rest[2:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("env set: %q is not KEY=VALUE", kv)
			}
			req.Vars = append(req.Vars, &v1.EnvAssignment{Name: k, Value: v, Secret: *secret})
		}
		res, err := c.apps.SetEnv(ctx, connect.NewRequest(req))
		if err != nil {
			return explain(err)
		}
		vars = res.Msg.GetVars()
	case len(rest) >= 3 && rest[0] == "unset":
		res, err := c.apps.UnsetEnv(ctx, connect.NewRequest(&v1.UnsetEnvRequest{IdOrName: rest[1], Names: rest[2:]}))
		if err != nil {
			return explain(err)
		}
		vars = res.Msg.GetVars()
	default:
		return usage
	}
	for _, v := range vars {
		switch {
		case v.GetSecret() && v.GetSet():
			fmt.Fprintf(stdout, "%s=(secret, set)\n", v.GetName())
		case v.GetSecret():
			fmt.Fprintf(stdout, "%s=(secret, not set)\n", v.GetName())
		default:
			fmt.Fprintf(stdout, "%s=%s\n", v.GetName(), v.GetValue())
		}
	}
	return nil
}

func cmdTemplates(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("templates")
	mine := fs.Bool("mine", false, "only your templates")
	global := fs.Bool("global", false, "only the platform's templates")
	from := fs.String("from", "", "with save: the app to save as a template")
	desc := fs.String("description", "", "with save: the template's description")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	c := mk()
	rest := fs.Args()
	switch {
	case len(rest) == 2 && rest[0] == "save":
		if *from == "" {
			return errors.New("templates save: name the app: gofastapi templates save NAME --from APP")
		}
		res, err := c.tmpl.CreateTemplate(ctx, connect.NewRequest(&v1.CreateTemplateRequest{Name: rest[1], Description: *desc, FromApp: *from}))
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "saved template %s (%s)\n", res.Msg.GetTemplate().GetName(), res.Msg.GetTemplate().GetId())
		return nil
	case len(rest) == 2 && rest[0] == "delete":
		if _, err := c.tmpl.DeleteTemplate(ctx, connect.NewRequest(&v1.DeleteTemplateRequest{Id: rest[1]})); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "deleted template %s\n", rest[1])
		return nil
	case len(rest) > 0:
		return errors.New("templates: gofastapi templates [--mine|--global] | templates save NAME --from APP | templates delete ID")
	}
	scope := v1.TemplateScope_TEMPLATE_SCOPE_ALL
	if *mine {
		scope = v1.TemplateScope_TEMPLATE_SCOPE_MINE
	} else if *global {
		scope = v1.TemplateScope_TEMPLATE_SCOPE_GLOBAL
	}
	res, err := c.tmpl.ListTemplates(ctx, connect.NewRequest(&v1.ListTemplatesRequest{Scope: scope}))
	if err != nil {
		return explain(err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tFRAMEWORK\tMODE\tOWNER")
	for _, t := range res.Msg.GetTemplates() {
		owner := "(global)"
		if !t.GetGlobal() {
			owner = t.GetOwner()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.GetId(), t.GetName(), lowerEnum(t.GetFramework().String(), "FRAMEWORK_"),
			lowerEnum(t.GetMode().String(), "APP_MODE_"), owner)
	}
	return tw.Flush()
}

func cmdNew(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("new")
	tmpl := fs.String("template", "", "template id (see gofastapi templates); default: the framework's starter")
	multi := fs.Bool("multi", false, "a multi-file app (the framework's multi-file preset)")
	framework := fs.String("framework", "fastapi", "fastapi or fasthtml")
	desc := fs.String("description", "", "the app's description")
	noDeploy := fs.Bool("no-deploy", false, "create the app with its files as a draft, without deploying")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return errors.New("new: name the app: gofastapi new NAME [--template T]")
	}
	req := &v1.CreateAppRequest{Name: fs.Arg(0), Description: *desc, TemplateId: *tmpl}
	switch *framework {
	case "fastapi":
		req.Framework = v1.Framework_FRAMEWORK_FASTAPI
	case "fasthtml":
		req.Framework = v1.Framework_FRAMEWORK_FASTHTML
	default:
		return fmt.Errorf("new: --framework %q must be fastapi or fasthtml", *framework)
	}
	if *multi {
		req.Mode = v1.AppMode_APP_MODE_MULTI
	}
	if *tmpl != "" && !flagSet(fs, "framework") {
		req.Framework = v1.Framework_FRAMEWORK_UNSPECIFIED // the template's
	}
	c := mk()
	res, err := c.apps.CreateApp(ctx, connect.NewRequest(req))
	if err != nil {
		return explain(err)
	}
	var names []string
	for _, f := range res.Msg.GetDraft().GetFiles() {
		names = append(names, f.GetName())
	}
	fmt.Fprintf(stdout, "created app %s with %s\n", fs.Arg(0), strings.Join(names, ", "))
	if *noDeploy {
		return nil
	}
	return deployAndPrint(ctx, c, &v1.DeployRequest{IdOrName: fs.Arg(0)}, stdout)
}

func cmdEvents(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("events")
	n := fs.Int("n", 50, "number of recent events")
	follow := fs.Bool("f", false, "follow: print new events as they happen, until interrupted")
	mk := clientFlags(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return errors.New("events: name one app: gofastapi events [-f] NAME")
	}
	stream, err := mk().watch.WatchEvents(ctx, connect.NewRequest(&v1.WatchEventsRequest{IdOrName: fs.Arg(0), Limit: int32(*n), Follow: *follow}))
	if err != nil {
		return explain(err)
	}
	defer stream.Close()
	for stream.Receive() {
		e := stream.Msg().GetEvent()
		if e == nil {
			continue // a heartbeat
		}
		fmt.Fprintf(stdout, "%s %-13s %s\n", e.GetTime().AsTime().Local().Format("2006-01-02 15:04:05.000"),
			lowerEnum(e.GetKind().String(), "EVENT_KIND_"), e.GetMessage())
	}
	return streamEnd(ctx, stream.Err())
}

// cmdKeys manages the platform key file (see controlplane/secretbox).
func cmdKeys(args []string, stdout io.Writer) error {
	fs := newFlags("keys")
	file := fs.String("file", filepath.Join(".gofastapi", "secret.key"), "the key file (gofastapi dev --secret-key-file; default DATA/secret.key)")
	if err := parseInterspersed(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 || fs.Arg(0) != "rotate" {
		return errors.New("keys: gofastapi keys rotate [--file F]")
	}
	if err := secretbox.Rotate(*file); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new primary key written to the first line of %s; the older keys stay below it to open existing secrets.\nRestart the platform to seal new secrets with the new key.\n", *file)
	return nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func lowerEnum(s, prefix string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s, prefix)), "_", " ")
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
