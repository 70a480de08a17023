package deps

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofastapi/gofastapi/controlplane/validate"
	"github.com/gofastapi/gofastapi/proto/bundle"
)

// pip installs reqs into site. What pip reports wrong with the
// requirements comes back as problems, at the line of the package it
// names when it names one.
func (r *Resolver) pip(ctx context.Context, dir, site string, reqs []Requirement) ([]validate.Problem, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	list := filepath.Join(dir, "requirements.txt")
	var b strings.Builder
	for _, q := range reqs {
		b.WriteString(q.String() + "\n")
	}
	if err := os.WriteFile(list, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("dependencies: %w", err)
	}
	tmp := filepath.Join(dir, "tmp") // pip's downloads and unpacking, watched
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("dependencies: %w", err)
	}
	// pip runs with no file larger than an archive may be (a download
	// included: Python then gets EFBIG), and the install's directory is
	// watched, so an index serving too much fills no disk.
	cmd := exec.CommandContext(ctx, r.cfg.Python, "-c", fmt.Sprintf(pipUnder, bundle.MaxDepsBytes), "install",
		"--isolated", "--no-input", "--disable-pip-version-check", "--no-cache-dir", "--progress-bar", "off",
		"--only-binary", ":all:", "--no-compile", "--no-warn-script-location", "--quiet", "--root-user-action", "ignore", "--timeout", "30", "--retries", "1",
		"--index-url", r.cfg.Index, "--target", site, "--requirement", list)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir, "TMPDIR=" + tmp, "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dependencies: run pip: %w", err)
	}
	watched := make(chan bool, 1)
	stop := make(chan struct{})
	go func() { watched <- watchSize(dir, maxInstallBytes, stop, cancel) }()
	err := cmd.Wait()
	close(stop)
	tooMuch := <-watched
	switch {
	case tooMuch:
		return []validate.Problem{{File: File, Message: fmt.Sprintf(
			"installing the packages wrote more than %d MB; the packages may take at most %d MB", maxInstallBytes>>20, bundle.MaxDepsBytes>>20)}}, nil
	case ctx.Err() != nil:
		return []validate.Problem{{File: File, Message: fmt.Sprintf("installing the packages took more than %s; try again, or declare fewer", r.cfg.Timeout)}}, nil
	case err == nil:
		return nil, nil
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return nil, fmt.Errorf("dependencies: run pip: %w", err)
	}
	return pipProblems(stderr.String(), reqs), nil
}

// pipUnder runs pip (its arguments follow) with no file larger than %d
// bytes: Python ignores SIGXFSZ, so a larger write fails with EFBIG
// ("File too large"), a download's included.
const pipUnder = `import resource, runpy
resource.setrlimit(resource.RLIMIT_FSIZE, (%[1]d, %[1]d))
runpy.run_module("pip", run_name="__main__", alter_sys=True)`

// maxInstallBytes bounds what an install may write in all (downloads,
// their unpacking and the packages), well above what the packages may take
// in the end.
const maxInstallBytes = 4 * bundle.MaxDepsBytes

// watchSize adds up the sizes of the files under dir every 100 ms until
// stop is closed; past limit it calls kill and returns true.
func watchSize(dir string, limit int64, stop <-chan struct{}, kill func()) bool {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return false
		case <-tick.C:
		}
		var size int64
		filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, err := d.Info(); err == nil {
					size += info.Size()
				}
			}
			return nil // files come and go while pip works
		})
		if size > limit {
			kill()
			return true
		}
	}
}

// pipProblems turns pip's ERROR lines into problems.
func pipProblems(stderr string, reqs []Requirement) []validate.Problem {
	var probs []validate.Problem
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		msg, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ERROR: ")
		if !ok {
			continue
		}
		p := validate.Problem{File: File, Message: "pip: " + msg}
		if strings.Contains(msg, "File too large") { // EFBIG: see pipUnder
			p.Message = fmt.Sprintf("a package's download, or one of its files, is larger than %d MB, the most the packages may take", bundle.MaxDepsBytes>>20)
		}
		for _, q := range reqs {
			if names(msg, "requirement ", q.Name) || names(msg, "found for ", q.Name) {
				p.Line = q.Line
			}
		}
		probs = append(probs, p)
	}
	if len(probs) == 0 {
		msg := strings.TrimSpace(stderr)
		if len(msg) > 500 {
			msg = msg[len(msg)-500:]
		}
		probs = append(probs, validate.Problem{File: File, Message: "pip could not install the packages: " + msg})
	}
	return probs
}

// names reports whether msg has after, then the package name (in pip's
// spelling or normalized), as a whole name.
func names(msg, after, name string) bool {
	for rest := strings.ToLower(msg); ; {
		i := strings.Index(rest, after)
		if i < 0 {
			return false
		}
		rest = rest[i+len(after):]
		n := nameRE.FindString(rest)
		if Normalize(n) == name {
			return true
		}
	}
}
