package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/authly/authly/internal/token"
)

// Where new keys are made.
const (
	BackendSoftware = "software" // in memory, stored sealed under the KEK
	BackendPKCS11   = "pkcs11"   // inside an HSM, which never lets the private key out
)

// rsaBits is the size of the RSA keys made for RS256.
const rsaBits = 2048

// HSM makes and holds key pairs inside a hardware security module. Authly stores only the
// public key and the reference; the private key never leaves the module. internal/keys/pkcs11
// implements it for PKCS #11 tokens.
type HSM interface {
	// Generate makes a non-extractable key pair for alg (ES256 or RS256) labelled label.
	Generate(ctx context.Context, label, alg string) (crypto.Signer, HSMRef, error)
	// Find returns the signer of a key pair made by Generate.
	Find(ctx context.Context, ref HSMRef) (crypto.Signer, error)
	// Destroy deletes a key pair from the module.
	Destroy(ctx context.Context, ref HSMRef) error
}

// HSMRef names a key pair inside an HSM: its PKCS #11 CKA_ID and CKA_LABEL.
type HSMRef struct {
	ID    []byte
	Label string
}

// madeKey is a key pair made for a new row: its signer and what the row stores.
type madeKey struct {
	signer    crypto.Signer
	publicDER []byte
	sealed    []byte // software: the sealed PKCS #8 private key
	kekID     string
	hsm       *HSMRef
}

// makeKey makes a key pair for kid in the configured backend.
func (s *Store) makeKey(ctx context.Context, kid string) (madeKey, error) {
	var m madeKey
	switch s.backend {
	case BackendSoftware:
		private, err := generateSoftware(s.alg)
		if err != nil {
			return m, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(private)
		if err != nil {
			return m, err
		}
		m.sealed, err = s.kek.seal(kid, der)
		clear(der)
		if err != nil {
			return m, err
		}
		m.signer, m.kekID = private, s.kek.id
	case BackendPKCS11:
		signer, ref, err := s.hsm.Generate(ctx, hsmLabel(kid), s.alg)
		if err != nil {
			return m, fmt.Errorf("keys: generating %s key in the HSM: %w", s.alg, err)
		}
		m.signer, m.hsm = signer, &ref
	}
	der, err := x509.MarshalPKIXPublicKey(m.signer.Public())
	if err != nil {
		return m, err
	}
	m.publicDER = der
	return m, nil
}

// hsmLabel is the CKA_LABEL of an Authly key on a PKCS #11 token.
func hsmLabel(kid string) string { return "authly-" + kid }

func generateSoftware(alg string) (crypto.Signer, error) {
	switch alg {
	case token.ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case token.EdDSA:
		_, private, err := ed25519.GenerateKey(rand.Reader)
		return private, err
	case token.RS256:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	}
	return nil, fmt.Errorf("keys: unsupported algorithm %q", alg)
}

// loadSigner returns the signer of a published key from its row.
func (s *Store) loadSigner(ctx context.Context, r keyRow) (crypto.Signer, error) {
	var signer crypto.Signer
	switch r.backend {
	case BackendSoftware:
		if s.kek == nil {
			return nil, fmt.Errorf("keys: key %s is a software key and no key-encryption key is configured", r.kid)
		}
		der, err := s.kek.open(r.kid, r.kekID, r.sealed)
		if err != nil {
			return nil, err
		}
		private, err := x509.ParsePKCS8PrivateKey(der)
		clear(der)
		if err != nil {
			return nil, fmt.Errorf("keys: key %s: %w", r.kid, err)
		}
		var ok bool
		if signer, ok = private.(crypto.Signer); !ok {
			return nil, fmt.Errorf("keys: key %s: %T is not a signer", r.kid, private)
		}
	case BackendPKCS11:
		if s.hsm == nil {
			return nil, fmt.Errorf("keys: key %s is held in an HSM and no PKCS #11 token is configured", r.kid)
		}
		var err error
		if signer, err = s.hsm.Find(ctx, r.hsm); err != nil {
			return nil, fmt.Errorf("keys: finding key %s in the HSM: %w", r.kid, err)
		}
	default:
		return nil, fmt.Errorf("keys: key %s has the unknown backend %q", r.kid, r.backend)
	}
	// The private half must belong to the published public key, whatever the store holds.
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil || !bytes.Equal(der, r.publicDER) {
		return nil, errors.New("keys: key " + r.kid + ": the private key does not match the stored public key")
	}
	return signer, nil
}
