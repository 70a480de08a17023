package deps

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/gofastapi/gofastapi/controlplane/validate"
)

// File is the name of an app's dependency file, at the top of its files.
const File = "requirements.txt"

// MaxRequirements bounds how many packages an app may declare.
const MaxRequirements = 50

// Requirement is one line of requirements.txt.
type Requirement struct {
	// Name is the package's normalized name (Normalize).
	Name string
	// Spec is its version specifier without spaces, such as "==1.0" or
	// ">=2,<3"; empty for any version.
	Spec string
	Line int
}

// String is the requirement as pip reads it.
func (r Requirement) String() string { return r.Name + r.Spec }

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?`)
	specRE = regexp.MustCompile(`^(===|==|>=|<=|~=|!=|<|>)[A-Za-z0-9.*+!_-]+$`)
	sepRE  = regexp.MustCompile(`[-_.]+`)
)

// ValidName reports whether s is a package's name (as package indexes
// spell them: letters, digits, and . _ - inside).
func ValidName(s string) bool { return s != "" && nameRE.FindString(s) == s }

// Normalize returns a package's name as package indexes compare them:
// lower case, with runs of -, _ and . as one -.
func Normalize(name string) string { return sepRE.ReplaceAllString(strings.ToLower(name), "-") }

// Parse returns the requirements in content, or problems naming File and
// the line of each that is not a plain package requirement.
func Parse(content []byte) ([]Requirement, []validate.Problem) {
	var reqs []Requirement
	var probs []validate.Problem
	seen := map[string]int{}
	problem := func(line int, format string, args ...any) {
		probs = append(probs, validate.Problem{File: File, Line: line, Message: fmt.Sprintf(format, args...)})
	}
	for i, raw := range strings.Split(string(content), "\n") {
		n := i + 1
		line := raw
		if j := strings.Index(line, "#"); j >= 0 {
			line = line[:j]
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "-"):
			problem(n, "%q: options are not allowed in requirements.txt; list package names only, one a line, such as six or six==1.16.0", line)
			continue
		case strings.Contains(line, "://") || strings.Contains(line, "@") || strings.ContainsAny(line[:1], "./~"):
			problem(n, "%q: URLs and paths are not allowed; packages come from the platform's package index, by name", line)
			continue
		case strings.Contains(line, ";"):
			problem(n, "%q: environment markers (after ;) are not supported; every package listed is installed", line)
			continue
		case strings.Contains(line, "["):
			problem(n, "%q: extras ([...]) are not supported; list the packages an extra adds by name", line)
			continue
		case strings.HasSuffix(line, "\\"):
			problem(n, "line continuations are not supported; put each package on one line")
			continue
		}
		name := nameRE.FindString(line)
		spec := strings.Join(strings.Fields(line[len(name):]), "")
		if name == "" || !validSpec(spec) {
			problem(n, "%q is not a package requirement: write a name, optionally with versions, such as six, six==1.16.0 or attrs>=23,<25", line)
			continue
		}
		r := Requirement{Name: Normalize(name), Spec: spec, Line: n}
		if first, dup := seen[r.Name]; dup {
			problem(n, "%s is listed twice (first on line %d); list each package once", r.Name, first)
			continue
		}
		seen[r.Name] = n
		reqs = append(reqs, r)
	}
	if len(reqs) > MaxRequirements {
		problem(reqs[MaxRequirements].Line, "more than %d packages; an app may declare at most %d", MaxRequirements, MaxRequirements)
	}
	return reqs, probs
}

func validSpec(spec string) bool {
	if spec == "" {
		return true
	}
	for _, part := range strings.Split(spec, ",") {
		if !specRE.MatchString(part) {
			return false
		}
	}
	return true
}

// AllowAll is the allowlist entry that allows every package.
const AllowAll = "*"

// CheckAllowed returns a problem for each requirement whose package is not
// on allowed (names, normalized or not, or AllowAll).
func CheckAllowed(reqs []Requirement, allowed []string) []validate.Problem {
	ok := allowSet(allowed)
	var probs []validate.Problem
	for _, r := range reqs {
		if !ok(r.Name) {
			probs = append(probs, validate.Problem{File: File, Line: r.Line, Message: fmt.Sprintf(
				"package %s is not on the platform's dependency allowlist; remove it, or ask an admin to allow it", r.Name)})
		}
	}
	return probs
}

func allowSet(allowed []string) func(string) bool {
	set := map[string]bool{}
	for _, a := range allowed {
		set[Normalize(a)] = true
	}
	return func(name string) bool { return set[AllowAll] || set[Normalize(name)] }
}

// DefaultAllowed is the built-in dependency allowlist: common pure-Python
// packages and what they need.
var DefaultAllowed = strings.Fields(`python-dateutil six pytz tzdata arrow types-python-dateutil
markdown attrs tabulate humanize python-slugify text-unidecode pyjwt itsdangerous emoji`)
