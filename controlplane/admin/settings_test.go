package admin

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

func TestNewImports(t *testing.T) {
	s := &Service{cfg: Config{DefaultImports: []string{"fastapi", "json", "os"}}}
	defaults := &store.Settings{}
	custom := &store.Settings{AllowedImports: []string{"fastapi", "numpy"}}
	tests := []listCase{
		{name: "no import change", st: defaults, req: &v1.UpdateSettingsRequest{}},
		{name: "add to the defaults", st: defaults, req: &v1.UpdateSettingsRequest{AddImports: []string{"numpy", "json"}},
			want: []string{"fastapi", "json", "os", "numpy"}, wantChanged: true},
		{name: "remove from a custom list", st: custom, req: &v1.UpdateSettingsRequest{RemoveImports: []string{"numpy"}},
			want: []string{"fastapi"}, wantChanged: true},
		{name: "replace", st: custom, req: &v1.UpdateSettingsRequest{AllowedImports: &v1.ImportList{Modules: []string{"fastapi", "os.path", "fastapi"}}},
			want: []string{"fastapi", "os.path"}, wantChanged: true},
		{name: "allow everything", st: defaults, req: &v1.UpdateSettingsRequest{AllowedImports: &v1.ImportList{Modules: []string{"*"}}},
			want: []string{"*"}, wantChanged: true},
		{name: "reset", st: custom, req: &v1.UpdateSettingsRequest{ResetAllowedImports: true}, want: nil, wantChanged: true},
		{name: "reset combined with an edit", st: custom, req: &v1.UpdateSettingsRequest{ResetAllowedImports: true, AddImports: []string{"x"}}, wantErr: true},
		{name: "not a module name", st: defaults, req: &v1.UpdateSettingsRequest{AddImports: []string{"os; rm -rf"}}, wantErr: true},
		{name: "leading dot", st: defaults, req: &v1.UpdateSettingsRequest{AddImports: []string{".x"}}, wantErr: true},
		{name: "empty list", st: custom, req: &v1.UpdateSettingsRequest{RemoveImports: []string{"fastapi", "numpy"}}, wantErr: true},
	}
	runListCases(t, tests, s.newImports)
	if diff := cmp.Diff([]string{"fastapi", "json", "os"}, s.cfg.DefaultImports); diff != "" {
		t.Errorf("editing changed the defaults (-want +got):\n%s", diff)
	}
}

func TestNewLimits(t *testing.T) {
	free, _ := store.TierLimits(store.TierFree)
	pro, _ := store.TierLimits(store.TierPro)
	unlimited, _ := store.TierLimits(store.TierUnlimited)
	i32 := func(n int32) *int32 { return &n }
	i64 := func(n int64) *int64 { return &n }
	tests := []struct {
		name    string
		cur     store.Limits
		req     *v1.SetLimitsRequest
		want    store.Limits
		wantErr bool
	}{
		{name: "tier", cur: free, req: &v1.SetLimitsRequest{Tier: "pro"}, want: pro},
		{name: "unlimited", cur: free, req: &v1.SetLimitsRequest{Tier: "unlimited"}, want: unlimited},
		{name: "numbers on the current limits", cur: pro, req: &v1.SetLimitsRequest{Apps: i32(3)},
			want: store.Limits{Tier: store.TierCustom, Apps: 3, Databases: pro.Databases, StorageBytes: pro.StorageBytes, RequestsPerMinute: pro.RequestsPerMinute}},
		{name: "tier then numbers", cur: free, req: &v1.SetLimitsRequest{Tier: "pro", Databases: i32(0), StorageBytes: i64(1 << 30)},
			want: store.Limits{Tier: store.TierCustom, Apps: pro.Apps, Databases: 0, StorageBytes: 1 << 30, RequestsPerMinute: pro.RequestsPerMinute}},
		{name: "requests", cur: free, req: &v1.SetLimitsRequest{RequestsPerMinute: i32(120)},
			want: store.Limits{Tier: store.TierCustom, Apps: free.Apps, Databases: free.Databases, StorageBytes: free.StorageBytes, RequestsPerMinute: 120}},
		{name: "negative requests", cur: free, req: &v1.SetLimitsRequest{RequestsPerMinute: i32(-5)}, wantErr: true},
		{name: "unknown tier", cur: free, req: &v1.SetLimitsRequest{Tier: "gold"}, wantErr: true},
		{name: "negative", cur: free, req: &v1.SetLimitsRequest{Apps: i32(-1)}, wantErr: true},
		{name: "nothing", cur: free, req: &v1.SetLimitsRequest{}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newLimits(tt.cur, tt.req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("limits (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestNewPackages(t *testing.T) {
	s := &Service{cfg: Config{DefaultPackages: []string{"six", "attrs"}}}
	custom := &store.Settings{AllowedPackages: []string{"six"}}
	tests := []listCase{
		{name: "no package change", st: &store.Settings{}, req: &v1.UpdateSettingsRequest{AddImports: []string{"numpy"}}},
		{name: "add to the defaults", st: &store.Settings{}, req: &v1.UpdateSettingsRequest{AddPackages: []string{"python-dateutil"}},
			want: []string{"six", "attrs", "python-dateutil"}, wantChanged: true},
		{name: "remove the last one: no app may declare any", st: custom, req: &v1.UpdateSettingsRequest{RemovePackages: []string{"six"}},
			want: []string{}, wantChanged: true},
		{name: "reset", st: custom, req: &v1.UpdateSettingsRequest{ResetAllowedPackages: true}, want: nil, wantChanged: true},
		{name: "reset combined with an edit", st: custom, req: &v1.UpdateSettingsRequest{ResetAllowedPackages: true, AddPackages: []string{"x"}}, wantErr: true},
		{name: "not a package name", st: custom, req: &v1.UpdateSettingsRequest{AddPackages: []string{"six==1.0"}}, wantErr: true},
		{name: "a URL", st: custom, req: &v1.UpdateSettingsRequest{AllowedPackages: &v1.PackageList{Packages: []string{"git+https://x/y"}}}, wantErr: true},
	}
	runListCases(t, tests, s.newPackages)
}

// listCase is a request's change to an allowlist and what it should give.
type listCase struct {
	name        string
	st          *store.Settings
	req         *v1.UpdateSettingsRequest
	want        []string
	wantChanged bool
	wantErr     bool
}

// runListCases checks edit (newImports or newPackages) against tests.
func runListCases(t *testing.T, tests []listCase, edit func(*store.Settings, *v1.UpdateSettingsRequest) ([]string, bool, error)) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, err := edit(tt.st, tt.req)
			var inv *invalidError
			if tt.wantErr {
				if !errors.As(err, &inv) {
					t.Fatalf("error = %v, want an invalidError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("allowlist (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListEditDescribe(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{importsEdit(&v1.UpdateSettingsRequest{AddImports: []string{"numpy"}, RemoveImports: []string{"os"}}).describe("allowed imports"), "allowed imports +numpy -os"},
		{importsEdit(&v1.UpdateSettingsRequest{AllowedImports: &v1.ImportList{Modules: []string{"a", "b"}}}).describe("allowed imports"), "allowed imports set to a b"},
		{packagesEdit(&v1.UpdateSettingsRequest{ResetAllowedPackages: true}).describe("allowed packages"), "allowed packages reset to the defaults"},
		{packagesEdit(&v1.UpdateSettingsRequest{AddPackages: []string{"six"}}).describe("allowed packages"), "allowed packages +six"},
	} {
		if tt.got != tt.want {
			t.Errorf("describe = %q, want %q", tt.got, tt.want)
		}
	}
}
