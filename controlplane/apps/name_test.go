package apps

import "testing"

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"hello", true}, {"my-app-2", true}, {"a", true},
		{"", false}, {"-x", false}, {"x-", false}, {"Hello", false}, {"a.b", false}, {"a_b", false},
		{"www", false}, {"api", false}, {"mongo-alice", false},
		{"abcdefghijabcdefghijabcdefghijabcdefghij", true}, {"abcdefghijabcdefghijabcdefghijabcdefghijk", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkName(tt.name) == ""; got != tt.ok {
				t.Errorf("checkName(%q) ok = %v, want %v (%s)", tt.name, got, tt.ok, checkName(tt.name))
			}
		})
	}
}
