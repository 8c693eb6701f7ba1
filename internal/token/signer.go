package token

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/golang-jwt/jwt/v5"
)

// signerMethod is a golang-jwt signing method for keys that are only reachable through
// crypto.Signer, such as keys inside an HSM. golang-jwt's ES256 and RS256 methods sign only
// with *ecdsa.PrivateKey and *rsa.PrivateKey; this one hashes the signing input, hands the
// digest to the signer, and encodes the result exactly as those methods would, so that
// golang-jwt's standard methods verify it. It is not registered with golang-jwt: parsing
// always uses the standard methods.
type signerMethod struct {
	alg      string
	standard jwt.SigningMethod
}

func newSignerMethod(alg string) *signerMethod {
	return &signerMethod{alg: alg, standard: methodFor(alg)}
}

// Alg implements jwt.SigningMethod.
func (m *signerMethod) Alg() string { return m.alg }

// Verify implements jwt.SigningMethod through golang-jwt's standard method.
func (m *signerMethod) Verify(signingString string, sig []byte, key any) error {
	return m.standard.Verify(signingString, sig, key)
}

// Sign implements jwt.SigningMethod for a crypto.Signer.
func (m *signerMethod) Sign(signingString string, key any) ([]byte, error) {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %s signing expects a crypto.Signer, got %T", jwt.ErrInvalidKeyType, m.alg, key)
	}
	digest := sha256.Sum256([]byte(signingString))
	sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	switch m.alg {
	case ES256:
		// crypto.Signer returns an ASN.1 ECDSA-Sig-Value; JOSE wants r and s as two 32-byte
		// big-endian integers, concatenated (RFC 7518 §3.4).
		return ecdsaJOSE(sig, 32)
	case RS256:
		return sig, nil // PKCS #1 v1.5, the same bytes in both worlds
	}
	return nil, fmt.Errorf("token: no crypto.Signer encoding for %s", m.alg)
}

// ecdsaJOSE converts a DER ECDSA signature into the fixed-size r||s form.
func ecdsaJOSE(der []byte, size int) ([]byte, error) {
	var r, s []byte
	input := cryptobyte.String(der)
	var inner cryptobyte.String
	if !input.ReadASN1(&inner, asn1.SEQUENCE) || !input.Empty() ||
		!inner.ReadASN1Integer(&r) || !inner.ReadASN1Integer(&s) || !inner.Empty() {
		return nil, errors.New("token: signer returned a malformed ECDSA signature")
	}
	r, s = trimLeadingZeros(r), trimLeadingZeros(s)
	if len(r) > size || len(s) > size || len(r) == 0 || len(s) == 0 {
		return nil, errors.New("token: signer returned an ECDSA signature of the wrong size")
	}
	out := make([]byte, 2*size)
	copy(out[size-len(r):size], r)
	copy(out[2*size-len(s):], s)
	return out, nil
}

func trimLeadingZeros(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return b
}
