// Package seal encrypts small secrets at rest (database passwords) with
// AES-256-GCM under the platform key.
//
// A sealed value is nonce || ciphertext || tag, bound to a context string
// (for example the owner's id) so that a sealed value copied to another
// record does not open there. The key lives outside the platform database:
// in the embedded default a file of 32 random bytes in the private data
// directory, created with mode 0600 on first start.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
)

// KeySize is the length of a platform key: AES-256.
const KeySize = 32

// ErrOpen means a sealed value is corrupt, was sealed under another key, or
// belongs to another context.
var ErrOpen = errors.New("seal: cannot open: wrong key or context, or corrupt value")

// Key seals and opens values.
type Key struct{ aead cipher.AEAD }

// NewKey returns a Key from KeySize raw bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("seal: key has %d bytes, want %d", len(raw), KeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Key{aead: aead}, nil
}

// LoadOrCreate reads the key file at path, creating it with a random key
// and mode 0600 if it does not exist. A key file readable by others is
// refused.
func LoadOrCreate(path string) (*Key, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw = make([]byte, KeySize)
		rand.Read(raw)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("seal: create key file: %w", err)
		}
		if _, err := f.Write(raw); err != nil {
			f.Close()
			return nil, fmt.Errorf("seal: write key file: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("seal: write key file: %w", err)
		}
		return NewKey(raw)
	} else if err != nil {
		return nil, fmt.Errorf("seal: read key file: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("seal: key file %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	return NewKey(raw)
}

// Seal encrypts plain, bound to context.
func (k *Key) Seal(plain []byte, context string) []byte {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	rand.Read(nonce)
	return k.aead.Seal(nonce, nonce, plain, []byte(context))
}

// Open decrypts a value sealed with context.
func (k *Key) Open(sealed []byte, context string) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, ErrOpen
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], []byte(context))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
