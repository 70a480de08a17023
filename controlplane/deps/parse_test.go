package deps

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	reqs, probs := Parse([]byte("# comment\n\nPython_Dateutil\nsix == 1.16.0  # pinned\nattrs>=23,<25\n"))
	if len(probs) > 0 {
		t.Fatalf("problems: %v", probs)
	}
	want := []Requirement{
		{Name: "python-dateutil", Line: 3},
		{Name: "six", Spec: "==1.16.0", Line: 4},
		{Name: "attrs", Spec: ">=23,<25", Line: 5},
	}
	if diff := cmp.Diff(want, reqs); diff != "" {
		t.Errorf("requirements (-want +got):\n%s", diff)
	}

	for _, tt := range []struct{ line, want string }{
		{"-r other.txt", "options are not allowed"},
		{"--index-url http://x/simple", "options are not allowed"},
		{"git+https://example.invalid/x.git", "URLs and paths are not allowed"},
		{"six @ https://example.invalid/six.whl", "URLs and paths are not allowed"},
		{"./local/pkg", "URLs and paths are not allowed"},
		{"six; python_version < '3.12'", "environment markers"},
		{"requests[socks]", "extras"},
		{"six \\", "line continuations"},
		{"six=1.0", "is not a package requirement"},
		{"six==", "is not a package requirement"},
		{"six 1.0", "is not a package requirement"},
	} {
		_, probs := Parse([]byte("attrs\n" + tt.line + "\n"))
		if len(probs) != 1 || probs[0].Line != 2 || probs[0].File != File || !strings.Contains(probs[0].Message, tt.want) {
			t.Errorf("Parse(%q) = %+v; want one problem on line 2 saying %q", tt.line, probs, tt.want)
		}
	}
	_, probs = Parse([]byte("six\nSIX\n"))
	if len(probs) != 1 || !strings.Contains(probs[0].Message, "six is listed twice (first on line 1)") {
		t.Errorf("a duplicate: %+v", probs)
	}
	_, probs = Parse([]byte(manyPackages(MaxRequirements + 1)))
	if len(probs) != 1 || probs[0].Line != MaxRequirements+1 {
		t.Errorf("too many packages: %+v", probs)
	}
}

func manyPackages(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("pkg" + strings.Repeat("x", i) + "\n")
	}
	return b.String()
}

func TestCheckAllowed(t *testing.T) {
	reqs, _ := Parse([]byte("python-dateutil\nSix\nnumpy\n"))
	probs := CheckAllowed(reqs, []string{"Python_Dateutil", "six"})
	if len(probs) != 1 || probs[0].Line != 3 || !strings.Contains(probs[0].Message, "package numpy is not on the platform's dependency allowlist") {
		t.Errorf("CheckAllowed = %+v", probs)
	}
	if probs := CheckAllowed(reqs, []string{AllowAll}); len(probs) != 0 {
		t.Errorf("with %s: %+v", AllowAll, probs)
	}
}

func TestPipProblems(t *testing.T) {
	reqs, _ := Parse([]byte("colorword\ngreet==3.0\n"))
	probs := pipProblems("Looking in indexes: x\nERROR: Could not find a version that satisfies the requirement greet==3.0 (from versions: 1.0)\nERROR: No matching distribution found for greet==3.0\n", reqs)
	if len(probs) != 2 || probs[0].Line != 2 || probs[1].Line != 2 || !strings.HasPrefix(probs[0].Message, "pip: Could not find a version") {
		t.Errorf("pipProblems = %+v", probs)
	}
	if probs := pipProblems("Traceback...\nOSError: disk full\n", reqs); len(probs) != 1 || !strings.Contains(probs[0].Message, "disk full") {
		t.Errorf("pipProblems without ERROR lines = %+v", probs)
	}
}

func TestPipProblemsNameTheWholeName(t *testing.T) {
	reqs, _ := Parse([]byte("greet\ngreeting==9\n"))
	probs := pipProblems("ERROR: No matching distribution found for greeting==9\n", reqs)
	if len(probs) != 1 || probs[0].Line != 2 {
		t.Errorf("pipProblems = %+v; want line 2 (greeting), not greet's", probs)
	}
}

func TestValidName(t *testing.T) {
	for s, want := range map[string]bool{"six": true, "python-dateutil": true, "zope.interface": true, "a": true,
		"": false, "six==1.0": false, "-six": false, "six-": false, "git+https://x/y": false, "a b": false} {
		if got := ValidName(s); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", s, got, want)
		}
	}
}
