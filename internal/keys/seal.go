package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// KEKSize is the length of a key-encryption key: AES-256.
const KEKSize = 32

// ErrWrongKEK means a private key was sealed under another key-encryption key than the one
// configured, or its sealed bytes were altered or moved to another key's row.
var ErrWrongKEK = errors.New("keys: the private key cannot be unsealed with this key-encryption key")

// kek seals software private keys with AES-256-GCM. The key id is the associated data, so a
// sealed key copied into another key's row does not open.
type kek struct {
	aead cipher.AEAD
	// id names the KEK without revealing it: the first 8 bytes of HMAC-SHA-256 keyed with
	// the KEK over a fixed label. It is stored beside each sealed key, so that a wrong KEK
	// is reported as such rather than as corrupt data.
	id string
}

func newKEK(key []byte) (*kek, error) {
	if len(key) != KEKSize {
		return nil, fmt.Errorf("keys: the key-encryption key must be %d bytes, got %d", KEKSize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("authly signing-key KEK id"))
	return &kek{aead: aead, id: hex.EncodeToString(mac.Sum(nil)[:8])}, nil
}

// seal returns nonce || ciphertext || tag. Nonces are random: a KEK seals one key per
// rotation, far below the 2^32 messages a random 96-bit nonce allows.
func (k *kek) seal(kid string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.aead.Seal(nonce, nonce, plaintext, []byte(kid)), nil
}

func (k *kek) open(kid, kekID string, sealed []byte) ([]byte, error) {
	if kekID != k.id {
		return nil, fmt.Errorf("%w (key %s was sealed under KEK id %s, the configured KEK has id %s)", ErrWrongKEK, kid, kekID, k.id)
	}
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, fmt.Errorf("%w (key %s: sealed data too short)", ErrWrongKEK, kid)
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("%w (key %s: authentication failed)", ErrWrongKEK, kid)
	}
	return plain, nil
}
