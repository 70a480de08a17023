package secretbox

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

const idSize = 4

// ErrOpen means a sealed value could not be opened: it was altered, sealed
// for another purpose, or sealed with a key the keyring no longer holds.
var ErrOpen = errors.New("secretbox: cannot open sealed value")

// Keyring seals with its primary key and opens with any of its keys.
type Keyring struct {
	primary []byte // key id of the primary key
	aeads   map[string]cipher.AEAD
}

// New returns a keyring of keys, the first being the primary key.
func New(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("secretbox: no key")
	}
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	for i, key := range keys {
		if len(key) != KeySize {
			return nil, fmt.Errorf("secretbox: key %d is %d bytes, want %d", i+1, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		id := keyID(key)
		if i == 0 {
			k.primary = id
		}
		k.aeads[string(id)] = aead
	}
	return k, nil
}

func keyID(key []byte) []byte {
	sum := sha256.Sum256(key)
	return sum[:idSize]
}

// Seal encrypts plaintext. label binds the value to its purpose and owner
// (for example "env:" + appID + ":" + name): Open with another label fails,
// so a sealed value copied to another record does not open there.
func (k *Keyring) Seal(plaintext []byte, label string) ([]byte, error) {
	aead := k.aeads[string(k.primary)]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(append([]byte{}, k.primary...), nonce...)
	return aead.Seal(out, nonce, plaintext, []byte(label)), nil
}

// Open decrypts a value made by Seal with the same label.
func (k *Keyring) Open(sealed []byte, label string) ([]byte, error) {
	if len(sealed) < idSize {
		return nil, ErrOpen
	}
	aead, ok := k.aeads[string(sealed[:idSize])]
	if !ok || len(sealed) < idSize+aead.NonceSize() {
		return nil, ErrOpen
	}
	nonce := sealed[idSize : idSize+aead.NonceSize()]
	pt, err := aead.Open(nil, nonce, sealed[idSize+aead.NonceSize():], []byte(label))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Parse reads keys in the key file format (see the package doc). Blank
// lines and lines starting with # are ignored.
func Parse(data []byte) (*Keyring, error) {
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := hex.DecodeString(line)
		if err != nil || len(key) != KeySize {
			return nil, fmt.Errorf("secretbox: key file line %d: want %d hex digits (a 32-byte key, e.g. from `openssl rand -hex 32`)", n, 2*KeySize)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("secretbox: the key file has no key: put a 64-hex-digit key on its first line")
	}
	return New(keys...)
}

// LoadOrCreate reads the key file at path, creating it (mode 0600) with one
// new random key if it does not exist.
func LoadOrCreate(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		data = []byte(hex.EncodeToString(key) + "\n")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("secretbox: create key file: %w", err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return nil, fmt.Errorf("secretbox: write key file: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("secretbox: read key file: %w", err)
	}
	k, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Rotate puts a new random primary key on the first line of the key file
// at path, keeping the older keys below it for opening existing values.
func Rotate(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("secretbox: read key file: %w", err)
	}
	if _, err := Parse(data); err != nil {
		return err
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	tmp := path + ".new"
	out := append([]byte(hex.EncodeToString(key)+"\n"), data...)
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
