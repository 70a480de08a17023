package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestNewUser(t *testing.T) {
	tests := []struct {
		name, username, password, email string
		wantErr                         string // substring; "" means valid
	}{
		{name: "valid", username: "alice", password: "correct horse"},
		{name: "valid with email", username: "bob_2-x", password: "12345678", email: "bob@example.com"},
		{name: "short username", username: "al", password: "correct horse", wantErr: "3-32 characters"},
		{name: "long username", username: strings.Repeat("a", 33), password: "correct horse", wantErr: "3-32 characters"},
		{name: "upper case", username: "Alice", password: "correct horse", wantErr: "a-z"},
		{name: "dot", username: "a.b", password: "correct horse", wantErr: "a-z"},
		{name: "short password", username: "alice", password: "1234567", wantErr: "at least 8"},
		{name: "huge password", username: "alice", password: strings.Repeat("x", MaxPasswordLen+1), wantErr: "at most"},
		{name: "bad email", username: "alice", password: "correct horse", email: "not-an-address", wantErr: "email"},
		{name: "email with a name", username: "alice", password: "correct horse", email: "Alice <a@example.com>", wantErr: "email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := NewUser(tt.username, tt.password, tt.email)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewUser: %v", err)
				}
				if ok, _ := CheckPassword(u.PasswordHash, tt.password); !ok || u.Email != tt.email || u.Username != tt.username {
					t.Errorf("NewUser = %+v: password not hashed or fields lost", u)
				}
				return
			}
			var inv *InvalidError
			if !errors.As(err, &inv) || !strings.Contains(inv.Msg, tt.wantErr) {
				t.Errorf("NewUser error = %v, want an InvalidError mentioning %q", err, tt.wantErr)
			}
		})
	}
}
