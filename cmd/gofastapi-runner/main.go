// Command gofastapi-runner is the runner agent alone: what `gofastapi
// runner` runs, in a binary that links nothing else. The pool starts one
// per warm runner, so its start and its memory are paid per runner: this
// one starts in about a millisecond with ~10 MB resident, where the whole
// platform binary takes ~25 ms of package init and ~50 MB. `gofastapi dev`
// and `gofastapi pool` use it when it sits next to their own executable
// (`make build` puts it there) and fall back to `gofastapi runner`.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/gofastapi/gofastapi/runner"
)

func main() {
	args := os.Args[1:]
	// "runner" first is allowed, so a command written for `gofastapi
	// runner` (the runner pod template) works with either binary.
	if len(args) > 0 && args[0] == "runner" {
		args = args[1:]
	}
	// Main handles SIGTERM and SIGINT itself (a graceful stop).
	if err := runner.Main(context.Background(), args, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gofastapi-runner:", err)
		os.Exit(1)
	}
}
