// Command gofastapi is the platform's binary: `gofastapi dev` runs the
// embedded default, `gofastapi pool` a shared pool manager, `gofastapi
// runner` is the runner agent (cmd/gofastapi-runner builds it alone, and
// the local backend prefers that; see runnerCommand), and the other
// subcommands are the command-line client of the Connect API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gofastapi/gofastapi/runner"
)

const usage = `gofastapi: deploy FastAPI apps in a second.

Server:
  gofastapi dev [flags]        run the platform on one machine (gofastapi dev -h)
  gofastapi pool [flags]       a pool manager shared by gateways (--backend local|kube; gofastapi pool -h)
  gofastapi keys rotate [--file F]   put a new platform key first in the key file (see README)
  gofastapi runner [flags]     a runner agent (started by the pool, not by hand)

Client (server from --server or GOFASTAPI_SERVER, default http://localhost:8080):
  gofastapi signup --username U [--password P]   create an account and log in
  gofastapi login --username U [--password P]    log in (password from stdin if omitted)
  gofastapi logout [--all]                       end this session (--all: every session of yours)
  gofastapi whoami                               show the logged-in user
  gofastapi sessions [revoke ID]                 list your sessions, or end one
  gofastapi passwd [--current P --new P]         change your password (ends your other sessions)
  gofastapi deploy [--name N] [--entrypoint F] FILE...   create or update app N and deploy FILEs
  gofastapi apps                                 list your apps
  gofastapi new NAME [--template T] [--multi] [--framework fasthtml] [--no-deploy]
                                                 create an app (from a template) and deploy it
  gofastapi logs [-f] NAME                       show an app's recent logs (-f: follow)
  gofastapi open [--docs] [--print] NAME         open the app's URL (or /docs) in a browser ($BROWSER,
                                                 else xdg-open); --print: print the URL
  gofastapi events [-f] NAME                     show an app's lifecycle events (-f: follow)
  gofastapi versions NAME                        list an app's versions, newest first
  gofastapi rollback NAME [VERSION]              serve an earlier version (default: the one before)
  gofastapi clone NAME NEW [--draft] [--no-deploy]   copy an app (env names copied, secret values not)
  gofastapi env NAME                             list an app's environment (secrets show as set)
  gofastapi domains NAME | domains add|remove NAME DOMAIN
                                                 an app's custom domains (add: DOMAIN's CNAME must
                                                 point at NAME.<platform domain>)
  gofastapi env set NAME KEY=VALUE... [--secret] set variables (or secrets); the app restarts
  gofastapi env unset NAME KEY...                remove variables; the app restarts
  gofastapi templates [--mine|--global]          list templates
  gofastapi templates save NAME --from APP       save an app as your own template
  gofastapi templates delete ID                  delete one of your templates
  gofastapi coldstarts NAME                      show an app's recent cold starts, phase by phase
  gofastapi stats NAME                           show an app's health, requests and latencies (24 h, per minute)
  gofastapi errors NAME                          show an app's recent 4xx/5xx answers, with tracebacks
  gofastapi delete NAME                          delete an app
  gofastapi db COMMAND                           your databases: list, create, show, rename, default,
                                                 delete, use, stats, collections, find, get, insert,
                                                 update, remove, rotate, viewer-credentials (gofastapi db help)
  gofastapi admin COMMAND                        users, create-user, promote, demote, delete-user,
                                                 limits, settings, stats, activity (gofastapi admin help)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "gofastapi:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev":
		return runDev(ctx, rest, stdout, stderr)
	case "pool":
		return runPool(ctx, rest, stdout, stderr)
	case "runner":
		return runner.Main(ctx, rest, stdin, stdout)
	case "signup", "login":
		return cmdLogin(ctx, cmd, rest, stdin, stdout)
	case "logout":
		return cmdLogout(ctx, rest, stdout)
	case "whoami":
		return cmdWhoami(ctx, rest, stdout)
	case "deploy":
		return cmdDeploy(ctx, rest, stdout)
	case "apps":
		return cmdApps(ctx, rest, stdout)
	case "logs":
		return cmdLogs(ctx, rest, stdout)
	case "open":
		return cmdOpen(ctx, rest, stdout)
	case "domains":
		return cmdDomains(ctx, rest, stdout)
	case "delete":
		return cmdDelete(ctx, rest, stdout)
	case "coldstarts":
		return cmdColdStarts(ctx, rest, stdout)
	case "stats":
		return cmdStats(ctx, rest, stdout)
	case "errors":
		return cmdErrors(ctx, rest, stdout)
	case "sessions":
		return cmdSessions(ctx, rest, stdout)
	case "passwd":
		return cmdPasswd(ctx, rest, stdin, stdout)
	case "db":
		return cmdDB(ctx, rest, stdout, stderr)
	case "admin":
		return cmdAdmin(ctx, rest, stdin, stdout, stderr)
	case "versions":
		return cmdVersions(ctx, rest, stdout)
	case "rollback":
		return cmdRollback(ctx, rest, stdout)
	case "clone":
		return cmdClone(ctx, rest, stdout)
	case "env":
		return cmdEnv(ctx, rest, stdout)
	case "templates":
		return cmdTemplates(ctx, rest, stdout)
	case "new":
		return cmdNew(ctx, rest, stdout)
	case "events":
		return cmdEvents(ctx, rest, stdout)
	case "keys":
		return cmdKeys(rest, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
	return errUsage
}
