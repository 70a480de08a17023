package main

import "testing"

func TestBundleName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"app.py", "app.py"},
		{"./app.py", "app.py"},
		{"pkg/models.py", "pkg/models.py"},
		{"pkg//sub/../models.py", "pkg/models.py"},
		{"/home/u/proj/app.py", "app.py"},
		{"../other/app.py", "app.py"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := bundleName(tt.in); got != tt.want {
				t.Errorf("bundleName(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
