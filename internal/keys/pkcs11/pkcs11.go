// Package pkcs11 keeps Authly's signing keys inside a PKCS #11 token: a hardware security
// module, or SoftHSM2 for development and tests. It implements keys.HSM with crypto11.
//
// Keys are generated inside the token as sensitive and non-extractable, so the private key
// never leaves it; Authly keeps only the public key and the key pair's CKA_ID and CKA_LABEL.
// Signing hands the token a SHA-256 digest (ES256: CKM_ECDSA, RS256: CKM_RSA_PKCS).
package pkcs11

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"github.com/ThalesGroup/crypto11"

	"github.com/authly/authly/internal/keys"
	"github.com/authly/authly/internal/token"
)

// Config selects a token.
type Config struct {
	Module     string // path of the PKCS #11 module (a shared library), AUTHLY_PKCS11_MODULE
	TokenLabel string // the token's label, AUTHLY_PKCS11_TOKEN_LABEL
	PIN        string // the user PIN, AUTHLY_PKCS11_PIN
}

// rsaBits is the size of the RSA keys made for RS256.
const rsaBits = 2048

// idBytes is the length of the random CKA_ID of each key pair.
const idBytes = 16

// Token is an open, logged-in session pool on one PKCS #11 token. It is safe for concurrent
// use.
type Token struct {
	ctx *crypto11.Context
}

var _ keys.HSM = (*Token)(nil)

// Open loads the module and logs in to the token with the given label.
func Open(cfg Config) (*Token, error) {
	if cfg.Module == "" || cfg.TokenLabel == "" || cfg.PIN == "" {
		return nil, errors.New("pkcs11: the module, the token label and the PIN are all required")
	}
	if _, err := os.Stat(cfg.Module); err != nil {
		return nil, fmt.Errorf("pkcs11: module: %w", err)
	}
	c, err := crypto11.Configure(&crypto11.Config{Path: cfg.Module, TokenLabel: cfg.TokenLabel, Pin: cfg.PIN})
	if err != nil {
		// crypto11's messages name the module and token, never the PIN.
		return nil, fmt.Errorf("pkcs11: opening token %q: %w", cfg.TokenLabel, err)
	}
	return &Token{ctx: c}, nil
}

// Close logs out and releases the module.
func (t *Token) Close() error { return t.ctx.Close() }

// Generate implements keys.HSM: it makes a key pair for alg inside the token.
func (t *Token) Generate(_ context.Context, label, alg string) (crypto.Signer, keys.HSMRef, error) {
	id := make([]byte, idBytes)
	if _, err := rand.Read(id); err != nil {
		return nil, keys.HSMRef{}, err
	}
	var (
		signer crypto.Signer
		err    error
	)
	switch alg {
	case token.ES256:
		signer, err = t.ctx.GenerateECDSAKeyPairWithLabel(id, []byte(label), elliptic.P256())
	case token.RS256:
		signer, err = t.ctx.GenerateRSAKeyPairWithLabel(id, []byte(label), rsaBits)
	default:
		return nil, keys.HSMRef{}, fmt.Errorf("pkcs11: %s keys are not made in the token (ES256 and RS256 are)", alg)
	}
	if err != nil {
		return nil, keys.HSMRef{}, fmt.Errorf("pkcs11: generating %s key %q: %w", alg, label, err)
	}
	return signer, keys.HSMRef{ID: id, Label: label}, nil
}

// Find implements keys.HSM.
func (t *Token) Find(_ context.Context, ref keys.HSMRef) (crypto.Signer, error) {
	signer, err := t.find(ref)
	if err != nil {
		return nil, err
	}
	if signer == nil {
		return nil, fmt.Errorf("pkcs11: key %q is not in the token", ref.Label)
	}
	return signer, nil
}

// Destroy implements keys.HSM: it deletes the key pair from the token. A key pair that is
// already gone is not an error.
func (t *Token) Destroy(_ context.Context, ref keys.HSMRef) error {
	signer, err := t.find(ref)
	if err != nil || signer == nil {
		return err
	}
	if err := signer.Delete(); err != nil {
		return fmt.Errorf("pkcs11: deleting key %q: %w", ref.Label, err)
	}
	return nil
}

// find returns the key pair with ref's id and label, or nil when there is none.
func (t *Token) find(ref keys.HSMRef) (crypto11.Signer, error) {
	found, err := t.ctx.FindKeyPairs(ref.ID, []byte(ref.Label))
	if err != nil {
		return nil, fmt.Errorf("pkcs11: finding key %q: %w", ref.Label, err)
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("pkcs11: %d key pairs have the id and label of key %q", len(found), ref.Label)
}
