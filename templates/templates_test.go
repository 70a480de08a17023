package templates

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadShipped(t *testing.T) {
	ts, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tpl := range ts {
		ids = append(ids, tpl.ID)
	}
	// PRODUCT.md section 9 lists these eight.
	want := "fastapi-multi fasthtml-multi fasthtml hello jwt kanban notes todo"
	if got := strings.Join(ids, " "); got != want {
		t.Fatalf("templates %q, want %q", got, want)
	}
}

func TestParseRefusesBadTemplates(t *testing.T) {
	const good = "name: N\ndescription: D\nframework: fastapi\nmode: single\nfiles:\n  - name: app.py\n    content: \"app = 1\"\n"
	for _, tc := range []struct{ name, id, yaml, want string }{
		{"unknown field", "x", good + "colour: red\n", "colour"},
		{"missing name", "x", strings.Replace(good, "name: N\n", "", 1), "name is missing"},
		{"bad framework", "x", strings.Replace(good, "fastapi", "django", 1), `framework "django"`},
		{"bad mode", "x", strings.Replace(good, "single", "many", 1), `mode "many"`},
		{"no entrypoint file", "x", strings.Replace(good, "app.py", "main.py", 1), "entrypoint app.py is not among the files"},
		{"escaping path", "x", strings.Replace(good, "app.py", "../app.py", 1), `"../app.py"`},
		{"bad id", "Bad Id", good, `file name "Bad Id"`},
		{"not yaml", "x", "name: [", "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.id, []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	if _, err := Parse("ok", []byte(good)); err != nil {
		t.Fatalf("a good template: %v", err)
	}
	_, err := LoadFS(fstest.MapFS{"broken.yaml": {Data: []byte("name: x\n")}})
	if err == nil || !strings.Contains(err.Error(), "templates/broken.yaml") {
		t.Fatalf("LoadFS error %v does not name the file", err)
	}
}
