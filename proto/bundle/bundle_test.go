package bundle

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHash(t *testing.T) {
	a := []File{{Name: "app.py", Content: []byte("x = 1\n")}, {Name: "routes.py", Content: []byte("")}}
	b := []File{a[1], a[0]}
	tests := []struct {
		name  string
		x, y  []File
		equal bool
	}{
		{name: "order does not matter", x: a, y: b, equal: true},
		{name: "content matters", x: a, y: []File{{Name: "app.py", Content: []byte("x = 2\n")}, a[1]}},
		{name: "name matters", x: a, y: []File{{Name: "main.py", Content: a[0].Content}, a[1]}},
		{name: "boundaries matter", x: []File{{Name: "ab", Content: []byte("c")}}, y: []File{{Name: "a", Content: []byte("bc")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Hash(tt.x) == Hash(tt.y); got != tt.equal {
				t.Errorf("Hash equal = %v, want %v", got, tt.equal)
			}
		})
	}
	if h := Hash(a); len(h) != 64 {
		t.Errorf("Hash length = %d, want 64 hex digits", len(h))
	}
}

func TestEncodeDecode(t *testing.T) {
	files := []File{{Name: "app.py", Content: []byte("from fastapi import FastAPI\napp = FastAPI()\n")}}
	data, err := Encode(files)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data, Hash(files))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(files, got); diff != "" {
		t.Errorf("Decode (-want +got):\n%s", diff)
	}
	other := Hash([]File{{Name: "app.py", Content: []byte("tampered")}})
	if _, err := Decode(data, other); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("Decode with wrong hash: err = %v, want ErrHashMismatch", err)
	}
}
