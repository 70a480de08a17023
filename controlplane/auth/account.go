package auth

import (
	"fmt"
	"net/mail"
	"regexp"

	"github.com/gofastapi/gofastapi/controlplane/store"
)

var usernameRE = regexp.MustCompile(`^[a-z0-9_-]{3,32}$`)

// Account rules.
const (
	// MinPasswordLen is the shortest password accepted.
	MinPasswordLen = 8
	// MaxPasswordLen bounds the work of hashing one password.
	MaxPasswordLen = 1024
	maxEmailLen    = 254
)

// NewUser checks a new account's username, password and optional email
// and returns the user to store, with the password hashed. A broken rule
// is an *InvalidError.
func NewUser(username, password, email string) (*store.User, error) {
	if err := checkUsername(username); err != nil {
		return nil, err
	}
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	if err := checkEmail(email); err != nil {
		return nil, err
	}
	return &store.User{Username: username, PasswordHash: HashPassword(password), Email: email}, nil
}

func checkUsername(name string) error {
	if !usernameRE.MatchString(name) {
		return &InvalidError{Msg: fmt.Sprintf("username %q must be 3-32 characters of a-z, 0-9, _ and -", name)}
	}
	return nil
}

func checkPassword(pw string) error {
	switch {
	case len(pw) < MinPasswordLen:
		return &InvalidError{Msg: fmt.Sprintf("password must be at least %d characters", MinPasswordLen)}
	case len(pw) > MaxPasswordLen:
		return &InvalidError{Msg: fmt.Sprintf("password must be at most %d bytes", MaxPasswordLen)}
	}
	return nil
}

func checkEmail(email string) error {
	if email == "" {
		return nil
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > maxEmailLen {
		return &InvalidError{Msg: fmt.Sprintf("email %q is not an address like name@example.com", email)}
	}
	return nil
}
