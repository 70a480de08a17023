package validate

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofastapi/gofastapi/proto/bundle"
)

//go:embed validate.py
var script string

// Limits on an app's files (PRODUCT.md section 3).
const (
	MaxFiles     = 10
	MaxFileBytes = 100 << 10
	MaxTotal     = 500 << 10
)

// DefaultAllowedImports is the import allowlist of PRODUCT.md section 4.
var DefaultAllowedImports = strings.Fields(`fastapi pydantic typing datetime json math random
string collections itertools functools operator re uuid hashlib base64 urllib fasthtml
starlette os sys pathlib time enum dataclasses decimal html http copy textwrap calendar
locale secrets statistics pymongo bson jinja2 httpx jose`)

// staticExt are the non-Python file types an app may carry.
var staticExt = map[string]bool{".py": true, ".html": true, ".css": true, ".js": true, ".json": true, ".txt": true, ".svg": true}

// Problem locates one thing wrong with an app's files. Line is 1-based; 0
// means the problem concerns the file as a whole.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
	// Runtime is true when the code is fine but the platform's Python
	// runtime lacks a module it imports (an allowed one that is not
	// installed, such as fasthtml where the runtime has no python-fasthtml).
	Runtime bool `json:"runtime,omitempty"`
}

// Config configures a Validator.
type Config struct {
	// Python is the interpreter the runners use, for example /usr/bin/python3.
	Python string
	// Timeout bounds one validation run.
	Timeout time.Duration
	// Workers is how many validations may run at once, each in a Python
	// process kept alive between calls.
	Workers int
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if c.Python == "" {
		return errors.New("validate: Python interpreter path is empty")
	}
	if c.Timeout <= 0 {
		return errors.New("validate: Timeout must be positive")
	}
	if c.Workers < 1 {
		return errors.New("validate: Workers must be at least 1")
	}
	return nil
}

// Validator checks app files. It keeps up to Config.Workers Python
// processes alive between calls and is safe for concurrent use.
type Validator struct {
	cfg       Config
	idle      chan *worker // idle workers; a nil entry is room to start one
	installed []string     // top-level modules the runtime can import
}

// New returns a Validator for cfg. Close ends its processes.
func New(cfg Config) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	installed, err := installedModules(cfg.Python)
	if err != nil {
		return nil, err
	}
	v := &Validator{cfg: cfg, idle: make(chan *worker, cfg.Workers), installed: installed}
	for range cfg.Workers {
		v.idle <- nil
	}
	return v, nil
}

// Close ends the idle validator processes.
func (v *Validator) Close() {
	for range v.cfg.Workers {
		if w := <-v.idle; w != nil {
			w.close()
		}
	}
}

// Check returns every problem found in files, or nil when they may be
// deployed. Imports must be on allowed, or among provided: the top-level
// modules of the app's own dependencies (see controlplane/deps), which
// count as installed too. An error means validation itself could not run.
func (v *Validator) Check(ctx context.Context, files []bundle.File, entrypoint string, allowed []string, provided ...string) ([]Problem, error) {
	probs, _, err := v.check(ctx, files, entrypoint, allowed, provided, false)
	return probs, err
}

// CheckCompiled is Check, and when files may be deployed it also returns
// their Python modules compiled by the runners' interpreter: for each .py
// file F, the file __pycache__/F's name.TAG.pyc beside it that Python's
// import loads instead of compiling F (an unchecked hash-based pyc, PEP
// 552). A file only the compiler finds wrong has none. Nothing is compiled
// when a Python file is not UTF-8, which the validator sees only as text.
func (v *Validator) CheckCompiled(ctx context.Context, files []bundle.File, entrypoint string, allowed []string, provided ...string) ([]Problem, []bundle.File, error) {
	compile := true
	for _, f := range files {
		if strings.HasSuffix(f.Name, ".py") && !utf8.Valid(f.Content) {
			compile = false
		}
	}
	return v.check(ctx, files, entrypoint, allowed, provided, compile)
}

func (v *Validator) check(ctx context.Context, files []bundle.File, entrypoint string, allowed, provided []string, compile bool) ([]Problem, []bundle.File, error) {
	if probs := CheckNames(files); len(probs) > 0 {
		return probs, nil, nil
	}
	type file struct {
		Name    string `json:"name"`
		Content string `json:"content"`
	}
	req := struct {
		Files      []file   `json:"files"`
		Entrypoint string   `json:"entrypoint"`
		Allowed    []string `json:"allowed"`
		Installed  []string `json:"installed"`
		Provided   []string `json:"provided,omitempty"`
		Compile    bool     `json:"compile,omitempty"`
	}{Entrypoint: entrypoint, Allowed: allowed, Installed: v.installed, Provided: provided, Compile: compile}
	for _, f := range files {
		req.Files = append(req.Files, file{Name: f.Name, Content: string(f.Content)})
	}
	in, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	var w *worker
	select {
	case w = <-v.idle:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("validator busy: %w", ctx.Err())
	}
	if w == nil {
		if w, err = startWorker(v.cfg.Python); err != nil {
			v.idle <- nil
			return nil, nil, err
		}
	}
	line, err := w.do(ctx, in)
	if err != nil {
		w.kill()
		w.close()
		v.idle <- nil
		return nil, nil, err
	}
	v.idle <- w
	var out struct {
		Errors   []Problem `json:"errors"`
		Fatal    string    `json:"fatal"`
		Compiled []struct {
			Name    string `json:"name"`
			Content []byte `json:"content"` // base64 in JSON
		} `json:"compiled"`
	}
	if err := json.Unmarshal(line, &out); err != nil {
		return nil, nil, fmt.Errorf("read validator output: %w", err)
	}
	if out.Fatal != "" {
		return nil, nil, fmt.Errorf("validator failed: %s", out.Fatal)
	}
	if len(out.Errors) > 0 {
		return out.Errors, nil, nil
	}
	var compiled []bundle.File
	for _, f := range out.Compiled {
		compiled = append(compiled, bundle.File{Name: f.Name, Content: f.Content})
	}
	return nil, compiled, nil
}

// installedModules lists the top-level modules python can import: its
// built-in modules and every module on its default path (site-packages
// included), found without importing any of them.
func installedModules(python string) ([]string, error) {
	const list = "import pkgutil, sys; print('\\n'.join(sorted(set(sys.builtin_module_names) | {m.name for m in pkgutil.iter_modules()})))"
	out, err := exec.Command(python, "-I", "-c", list).Output()
	if err != nil {
		return nil, fmt.Errorf("validate: list the modules of %s: %w", python, err)
	}
	return strings.Fields(string(out)), nil
}

// CheckNames checks the number, names, types and sizes of files without
// looking inside them.
func CheckNames(files []bundle.File) []Problem {
	var probs []Problem
	if len(files) == 0 {
		return []Problem{{Message: "no files: an app needs at least its entrypoint, for example app.py"}}
	}
	if len(files) > MaxFiles {
		probs = append(probs, Problem{Message: fmt.Sprintf("%d files: an app may have at most %d", len(files), MaxFiles)})
	}
	seen := map[string]bool{}
	total := 0
	for _, f := range files {
		total += len(f.Content)
		if msg := checkName(f.Name); msg != "" {
			probs = append(probs, Problem{File: f.Name, Message: msg})
			continue
		}
		if seen[f.Name] {
			probs = append(probs, Problem{File: f.Name, Message: "file name appears twice"})
		}
		seen[f.Name] = true
		if len(f.Content) > MaxFileBytes {
			probs = append(probs, Problem{File: f.Name, Message: fmt.Sprintf("file is %d KB: at most %d KB per file", kb(len(f.Content)), MaxFileBytes>>10)})
		}
		if !utf8.Valid(f.Content) {
			probs = append(probs, Problem{File: f.Name, Message: "file is not UTF-8 text"})
		}
	}
	if total > MaxTotal {
		probs = append(probs, Problem{Message: fmt.Sprintf("files total %d KB: at most %d KB per app", kb(total), MaxTotal>>10)})
	}
	return probs
}

func checkName(name string) string {
	switch {
	case name == "":
		return "file name is empty"
	case len(name) > 100:
		return "file name is longer than 100 characters"
	case strings.HasPrefix(name, "/"):
		return "file name must be relative, not an absolute path"
	case path.Clean(name) != name || strings.Contains(name, ".."):
		return "file name must not contain `..`, `./` or repeated slashes"
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' || r == '/') {
			return fmt.Sprintf("file name has %q: use letters, digits, `_`, `-`, `.` and `/`", r)
		}
	}
	if !staticExt[path.Ext(name)] {
		return "file type not allowed: use .py, or static .html .css .js .json .txt .svg"
	}
	return ""
}

func kb(n int) int { return (n + 1023) >> 10 }

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
