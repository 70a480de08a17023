package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// newToken returns a random bearer token and the id it is stored under.
func newToken() (token, id string) {
	b := make([]byte, 32)
	rand.Read(b)
	token = "gfa_" + base64.RawURLEncoding.EncodeToString(b)
	return token, tokenID(token)
}

// tokenID is the sha256 of a token: the only form in which tokens are stored.
func tokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
