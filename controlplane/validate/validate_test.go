package validate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gofastapi/gofastapi/proto/bundle"
)

func newValidator(t *testing.T) *Validator {
	t.Helper()
	v, err := New(Config{Python: "/usr/bin/python3", Timeout: 20 * time.Second, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func files(kv ...string) []bundle.File {
	var fs []bundle.File
	for i := 0; i < len(kv); i += 2 {
		fs = append(fs, bundle.File{Name: kv[i], Content: []byte(kv[i+1])})
	}
	return fs
}

func TestCheck(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		name  string
		files []bundle.File
		want  []Problem // Message compared by prefix
	}{
		{name: "hello", files: files("app.py", "from fastapi import FastAPI\napp = FastAPI()\n")},
		{name: "attribute call spelling", files: files("app.py", "import fastapi\napp=fastapi.FastAPI()\n")},
		{name: "tuple unpacking", files: files("app.py", "from json import loads as fast_app\napp, rt = fast_app('[1, 2]')\n")},
		// Debian's Python has no python-fasthtml: the code is valid, but the
		// runtime could not start it, which validation says up front.
		{name: "allowed but not installed", files: files("app.py", "from fasthtml.common import fast_app\napp, rt = fast_app()\n"),
			want: []Problem{{File: "app.py", Line: 1, Column: 1, Message: "module 'fasthtml' is allowed but not installed in this platform's Python runtime", Runtime: true}}},
		{name: "comments and re.compile are fine", files: files("app.py", "import re\n# eval( exec( __import__(\napp = None\npat = re.compile('x')\n")},
		{name: "syntax error", files: files("app.py", "app = 1\ndef f(:\n"),
			want: []Problem{{File: "app.py", Line: 2, Column: 7, Message: "SyntaxError"}}},
		{name: "import outside allowlist", files: files("app.py", "import json\nimport subprocess\napp = 1\n"),
			want: []Problem{{File: "app.py", Line: 2, Column: 1, Message: "import of 'subprocess' is not allowed"}}},
		{name: "from import outside allowlist", files: files("app.py", "app = 1\nfrom socket import socket\n"),
			want: []Problem{{File: "app.py", Line: 2, Column: 1, Message: "import of 'socket' is not allowed"}}},
		{name: "submodule of allowed package", files: files("app.py", "import urllib.parse\nfrom starlette.responses import HTMLResponse\napp = 1\n")},
		{name: "prefix that is not a package boundary", files: files("app.py", "import jsonschema\napp = 1\n"),
			want: []Problem{{File: "app.py", Line: 1, Column: 1, Message: "import of 'jsonschema' is not allowed"}}},
		{name: "local modules and relative imports", files: files("app.py", "from routes import router\nfrom . import models\nimport pkg.sub\napp = 1\n", "routes.py", "router = 1\n", "models.py", "", "pkg/__init__.py", "", "pkg/sub.py", "")},
		{name: "no app", files: files("app.py", "from fastapi import FastAPI\napi = FastAPI()\n"),
			want: []Problem{{File: "app.py", Line: 1, Message: "app.py must define `app`"}}},
		{name: "app only inside a function", files: files("app.py", "def f():\n    app = 1\n"),
			want: []Problem{{File: "app.py", Line: 1, Message: "app.py must define `app`"}}},
		{name: "missing entrypoint", files: files("main.py", "app = 1\n"),
			want: []Problem{{File: "app.py", Message: "entrypoint app.py is missing"}}},
		{name: "every file is checked", files: files("app.py", "import routes\napp = 1\n", "routes.py", "import os\nimport ctypes\n"),
			want: []Problem{{File: "routes.py", Line: 2, Column: 1, Message: "import of 'ctypes' is not allowed"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Check(context.Background(), tt.files, "app.py", DefaultAllowedImports)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if i < len(tt.want) && strings.HasPrefix(got[i].Message, tt.want[i].Message) {
					got[i].Message = tt.want[i].Message
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckAllowAll(t *testing.T) {
	got, err := newValidator(t).Check(context.Background(), files("app.py", "import subprocess\napp = 1\n"), "app.py", []string{"*"})
	if err != nil || len(got) != 0 {
		t.Errorf("Check with * = %v, %v; want no problems", got, err)
	}
}

func TestCheckNames(t *testing.T) {
	big := strings.Repeat("x", MaxFileBytes+1)
	tests := []struct {
		name  string
		files []bundle.File
		want  string // "" means no problem
	}{
		{name: "fine", files: files("app.py", "", "static/style.css", "", "templates/index.html", "")},
		{name: "none", want: "no files"},
		{name: "parent dir", files: files("../app.py", ""), want: "file name must not contain `..`"},
		{name: "absolute", files: files("/etc/passwd.py", ""), want: "file name must be relative"},
		{name: "binary type", files: files("app.so", ""), want: "file type not allowed"},
		{name: "space", files: files("my app.py", ""), want: "file name has ' '"},
		{name: "too big", files: files("app.py", big), want: "file is 101 KB"},
		{name: "too many", files: files("a1.py", "", "a2.py", "", "a3.py", "", "a4.py", "", "a5.py", "", "a6.py", "", "a7.py", "", "a8.py", "", "a9.py", "", "a10.py", "", "a11.py", ""), want: "11 files"},
		{name: "duplicate", files: files("app.py", "", "app.py", ""), want: "file name appears twice"},
		{name: "not utf-8", files: files("app.py", "\xff\xfe"), want: "file is not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs := CheckNames(tt.files)
			if tt.want == "" {
				if len(probs) != 0 {
					t.Errorf("CheckNames = %v, want none", probs)
				}
				return
			}
			if len(probs) == 0 || !strings.HasPrefix(probs[0].Message, tt.want) {
				t.Errorf("CheckNames = %v, want first message starting %q", probs, tt.want)
			}
		})
	}
}

func TestCheckConcurrent(t *testing.T) {
	v := newValidator(t)
	defer v.Close()
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			src := "from fastapi import FastAPI\napp = FastAPI()\n"
			want := 0
			if i%2 == 1 {
				src += "import socket\n"
				want = 1
			}
			got, err := v.Check(context.Background(), files("app.py", src), "app.py", DefaultAllowedImports)
			if err == nil && len(got) != want {
				err = fmt.Errorf("call %d: %d problems, want %d: %v", i, len(got), want, got)
			}
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestCheckRecoversFromDeadWorker(t *testing.T) {
	v := newValidator(t)
	defer v.Close()
	ok := files("app.py", "app = 1\n")
	if _, err := v.Check(context.Background(), ok, "app.py", nil); err != nil {
		t.Fatal(err)
	}
	// Kill every idle worker behind the validator's back.
	for range v.cfg.Workers {
		w := <-v.idle
		if w != nil {
			w.kill()
		}
		v.idle <- w
	}
	for i := range 2 * v.cfg.Workers {
		_, err := v.Check(context.Background(), ok, "app.py", nil)
		if i >= v.cfg.Workers && err != nil {
			t.Fatalf("after replacing dead workers: %v", err)
		}
	}
}

// TestCheckCompiled checks what a deploy gets to send runners: each Python
// file compiled, named as the import of that file looks for it, which the
// runners' Python loads and runs as the file itself, without its source.
func TestCheckCompiled(t *testing.T) {
	v := newValidator(t)
	files := []bundle.File{
		{Name: "app.py", Content: []byte("from fastapi import FastAPI\nfrom shop.prices import total\n\napp = FastAPI()\nANSWER = total([20, 1])\n")},
		{Name: "shop/__init__.py", Content: nil},
		{Name: "shop/prices.py", Content: []byte("# -*- coding: utf-8 -*-\ndef total(xs):\n    return sum(xs) * 2\n")},
		// Only the compiler refuses this one; the import reports it.
		{Name: "shop/broken.py", Content: []byte("return 1\n")},
		{Name: "data.json", Content: []byte("[]")},
	}
	probs, compiled, err := v.CheckCompiled(context.Background(), files, "app.py", DefaultAllowedImports)
	if err != nil || len(probs) > 0 {
		t.Fatalf("CheckCompiled: %v %v", probs, err)
	}
	dir := t.TempDir()
	if err := bundle.WriteDir(dir, compiled, 0o700, 0o600); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range compiled {
		names = append(names, f.Name)
	}
	tag, err := exec.Command("/usr/bin/python3", "-c", "import sys; print(sys.implementation.cache_tag, end='')").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"__pycache__/app." + string(tag) + ".pyc",
		"shop/__pycache__/__init__." + string(tag) + ".pyc",
		"shop/__pycache__/prices." + string(tag) + ".pyc",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("compiled files (-want +got):\n%s", diff)
	}
	// No source beside them: the sources are empty files, so what runs is
	// the compiled code, loaded by the import without a check of the source.
	for _, name := range []string{"app.py", "shop/__init__.py", "shop/prices.py"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("/usr/bin/python3", "-I", "-B", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import app; print(app.ANSWER, app.__file__.endswith('app.py'))", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("import app: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "42 True" {
		t.Errorf("import app printed %q, want 42 True", got)
	}

	// Check compiles nothing.
	if probs, err := v.Check(context.Background(), files, "app.py", DefaultAllowedImports); err != nil || len(probs) > 0 {
		t.Fatalf("Check: %v %v", probs, err)
	}
	// Nor does CheckCompiled for files with problems, or with Python that
	// is not UTF-8.
	bad := append(slices.Clone(files[:1]), bundle.File{Name: "x.py", Content: []byte("def f(:\n")})
	if probs, compiled, err := v.CheckCompiled(context.Background(), bad, "app.py", DefaultAllowedImports); err != nil || len(probs) == 0 || compiled != nil {
		t.Errorf("CheckCompiled of a syntax error: %v, %d compiled, %v", probs, len(compiled), err)
	}
	latin := append(slices.Clone(files[:1]), bundle.File{Name: "x.py", Content: []byte("# -*- coding: latin-1 -*-\nS = '\xe9'\n")})
	if _, compiled, err := v.CheckCompiled(context.Background(), latin, "app.py", DefaultAllowedImports); err != nil || compiled != nil {
		t.Errorf("CheckCompiled of a latin-1 file: %d compiled, %v", len(compiled), err)
	}
}
