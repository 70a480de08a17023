package auth

import (
	"strings"
	"testing"
)

func TestPassword(t *testing.T) {
	h := HashPassword("correct horse")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q is not a PHC argon2id string with the expected parameters", h)
	}
	if h == HashPassword("correct horse") {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	tests := []struct {
		name, hash, password string
		ok, err              bool
	}{
		{name: "right", hash: h, password: "correct horse", ok: true},
		{name: "wrong", hash: h, password: "correct horsf"},
		{name: "empty", hash: h, password: ""},
		{name: "bcrypt is not argon2id", hash: "$2a$10$abc", password: "x", err: true},
		{name: "garbled", hash: "$argon2id$v=19$m=x$salt$key", password: "x", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := CheckPassword(tt.hash, tt.password)
			if ok != tt.ok || (err != nil) != tt.err {
				t.Errorf("CheckPassword = %v, %v; want %v, error %v", ok, err, tt.ok, tt.err)
			}
		})
	}
}

func TestToken(t *testing.T) {
	a, ida := newToken()
	b, idb := newToken()
	if a == b || ida == idb {
		t.Fatal("tokens repeat")
	}
	if !strings.HasPrefix(a, "gfa_") || len(a) < 40 {
		t.Errorf("token %q is too short or unprefixed", a)
	}
	if tokenID(a) != ida || strings.Contains(ida, a) || len(ida) != 64 {
		t.Errorf("token id %q is not the sha256 of the token", ida)
	}
}
