// Package templates holds the global app templates shipped with the
// platform: one YAML file each, embedded in the binary and checked when
// loaded.
//
// A template file has the fields name, description, framework (fastapi or
// fasthtml), mode (single or multi), entrypoint, tags and files (each a
// name and a content); its id is the file name without .yaml. Load checks
// the schema; the control plane also validates the code at load.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed *.yaml
var files embed.FS

// Template is one global template.
type Template struct {
	ID          string
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Framework   string `yaml:"framework"`
	Mode        string `yaml:"mode"`
	Entrypoint  string `yaml:"entrypoint"`
	Tags        []string
	Files       []File `yaml:"files"`
}

// File is one file of a template.
type File struct {
	Name    string `yaml:"name"`
	Content string `yaml:"content"`
}

type doc struct {
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	Framework   string   `yaml:"framework"`
	Mode        string   `yaml:"mode"`
	Entrypoint  string   `yaml:"entrypoint"`
	Tags        []string `yaml:"tags"`
	Files       []File   `yaml:"files"`
}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// Load returns the embedded templates, sorted by id.
func Load() ([]Template, error) { return LoadFS(files) }

// LoadFS reads every *.yaml file of fsys as a template.
func LoadFS(fsys fs.FS) ([]Template, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Template
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		t, err := Parse(strings.TrimSuffix(n, ".yaml"), data)
		if err != nil {
			return nil, fmt.Errorf("templates/%s: %w", n, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// Parse reads one template file; id is its file name without .yaml.
// Unknown fields are errors, so a misspelt field is not silently ignored.
func Parse(id string, data []byte) (Template, error) {
	var d doc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return Template{}, err
	}
	t := Template{ID: id, Name: d.Name, Description: d.Description, Framework: d.Framework, Mode: d.Mode,
		Entrypoint: d.Entrypoint, Tags: d.Tags, Files: d.Files}
	if t.Entrypoint == "" {
		t.Entrypoint = "app.py"
	}
	var problems []string
	if !idRE.MatchString(id) {
		problems = append(problems, fmt.Sprintf("file name %q must be 1-40 characters of a-z, 0-9 and - (it is the template's id)", id))
	}
	if strings.TrimSpace(t.Name) == "" {
		problems = append(problems, "name is missing")
	}
	if strings.TrimSpace(t.Description) == "" {
		problems = append(problems, "description is missing")
	}
	if t.Framework != "fastapi" && t.Framework != "fasthtml" {
		problems = append(problems, fmt.Sprintf("framework %q must be fastapi or fasthtml", t.Framework))
	}
	if t.Mode != "single" && t.Mode != "multi" {
		problems = append(problems, fmt.Sprintf("mode %q must be single or multi", t.Mode))
	}
	if len(t.Files) == 0 {
		problems = append(problems, "files is empty: a template needs at least its entrypoint")
	}
	if t.Mode == "single" && len(t.Files) > 1 {
		problems = append(problems, fmt.Sprintf("mode single but %d files: use mode multi", len(t.Files)))
	}
	seen := map[string]bool{}
	hasEntry := false
	for i, f := range t.Files {
		switch {
		case f.Name == "" || path.IsAbs(f.Name) || path.Clean(f.Name) != f.Name || strings.HasPrefix(f.Name, "../"):
			problems = append(problems, fmt.Sprintf("files[%d]: name %q must be a relative path such as routes.py", i, f.Name))
		case seen[f.Name]:
			problems = append(problems, fmt.Sprintf("files[%d]: %s appears twice", i, f.Name))
		}
		seen[f.Name] = true
		hasEntry = hasEntry || f.Name == t.Entrypoint
	}
	if len(t.Files) > 0 && !hasEntry {
		problems = append(problems, fmt.Sprintf("entrypoint %s is not among the files", t.Entrypoint))
	}
	if len(problems) > 0 {
		return Template{}, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return t, nil
}
