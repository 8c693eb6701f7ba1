package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// The JOSE algorithms an Issuer signs and verifies with (RFC 7518, RFC 8037).
const (
	ES256 = "ES256" // ECDSA on P-256 with SHA-256: the default for key-store keys
	EdDSA = "EdDSA" // Ed25519
	RS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256, for relying parties that know only RSA
	HS256 = "HS256" // HMAC with SHA-256, from a shared secret
	HS384 = "HS384"
	HS512 = "HS512"
)

// MinRSABits is the smallest RSA modulus accepted for signing or verifying.
const MinRSABits = 2048

// Asymmetric reports whether alg is one of the public-key algorithms, whose keys come from a
// KeySource.
func Asymmetric(alg string) bool { return alg == ES256 || alg == EdDSA || alg == RS256 }

// HMAC reports whether alg is one of the secret-based algorithms.
func HMAC(alg string) bool { return alg == HS256 || alg == HS384 || alg == HS512 }

// The fixed key ids of the HMAC secrets. Tokens signed with JWT_SECRET_KEY carry
// HMACAccessKeyID, those signed with JWT_REFRESH_SECRET_KEY carry HMACRefreshKeyID. Generated
// key ids never take these forms.
const (
	HMACAccessKeyID  = "hmac-access"
	HMACRefreshKeyID = "hmac-refresh"
)

// kidPattern is the form of every key id Authly accepts: short and made of base64url
// characters. A kid of any other form (quotes, slashes, dots, SQL) is refused before any
// lookup, so a hostile header never reaches a key store, a log line or a file path.
var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidKeyID reports whether kid has the form of an Authly key id.
func ValidKeyID(kid string) bool { return kidPattern.MatchString(kid) }

// SigningKey is a private key an Issuer signs with. Build it with NewSigningKey.
type SigningKey struct {
	id     string
	alg    string
	method jwt.SigningMethod
	key    any // what method.Sign takes
	public crypto.PublicKey
}

// NewSigningKey checks that signer holds a key for alg (ES256: P-256 ECDSA, EdDSA: Ed25519,
// RS256: RSA of at least MinRSABits) and returns it as a signing key with the given id.
//
// Software keys (*ecdsa.PrivateKey, *rsa.PrivateKey) and every Ed25519 signer sign through
// golang-jwt's own methods. Any other ECDSA or RSA crypto.Signer, such as a key held in an
// HSM, signs through a method that hands the digest to the signer and encodes the result as JOSE
// requires; golang-jwt's standard methods verify what it makes.
func NewSigningKey(kid, alg string, signer crypto.Signer) (*SigningKey, error) {
	if !ValidKeyID(kid) {
		return nil, fmt.Errorf("token: key id %q is not 1 to 64 base64url characters", kid)
	}
	if !Asymmetric(alg) {
		return nil, fmt.Errorf("token: %q is not a public-key algorithm", alg)
	}
	if signer == nil {
		return nil, errors.New("token: nil signer")
	}
	public := signer.Public()
	if err := checkPublicKey(alg, public); err != nil {
		return nil, err
	}
	sk := &SigningKey{id: kid, alg: alg, public: public}
	switch k := signer.(type) {
	case *ecdsa.PrivateKey:
		sk.method, sk.key = jwt.SigningMethodES256, k
	case *rsa.PrivateKey:
		sk.method, sk.key = jwt.SigningMethodRS256, k
	default:
		if alg == EdDSA {
			// golang-jwt's EdDSA method signs with any crypto.Signer.
			sk.method, sk.key = jwt.SigningMethodEdDSA, signer
		} else {
			sk.method, sk.key = newSignerMethod(alg), signer
		}
	}
	return sk, nil
}

// ID is the key id written into the header of every token the key signs.
func (k *SigningKey) ID() string { return k.id }

// Algorithm is the key's JOSE algorithm.
func (k *SigningKey) Algorithm() string { return k.alg }

// Public is the key's public half.
func (k *SigningKey) Public() crypto.PublicKey { return k.public }

// VerificationKey is a key tokens are checked against: a public key, or an HMAC secret.
type VerificationKey struct {
	ID        string
	Algorithm string // the only algorithm a token signed with this key may name
	// Key is *ecdsa.PublicKey (ES256), ed25519.PublicKey (EdDSA), *rsa.PublicKey (RS256) or
	// the secret as []byte (HS256, HS384, HS512).
	Key any
	// Type, when set, is the only token type the key verifies. HMAC secrets are bound to one
	// type each; public keys sign both types, which the typ header tells apart.
	Type Type
}

// KeySet is a consistent snapshot of keys: the one that signs and those that verify. It is
// immutable once built, so an Issuer can use it without locks while a KeySource swaps in a new
// one.
type KeySet struct {
	signing *SigningKey
	byID    map[string]*VerificationKey
}

// NewKeySet checks every key and returns the set. signing may be nil for a set that only
// verifies; when set, its public key verifies too. Key ids must be unique.
func NewKeySet(signing *SigningKey, verify ...VerificationKey) (*KeySet, error) {
	ks := &KeySet{signing: signing, byID: make(map[string]*VerificationKey, len(verify)+1)}
	if signing != nil {
		ks.byID[signing.id] = &VerificationKey{ID: signing.id, Algorithm: signing.alg, Key: signing.public}
	}
	for _, v := range verify {
		if !ValidKeyID(v.ID) {
			return nil, fmt.Errorf("token: key id %q is not 1 to 64 base64url characters", v.ID)
		}
		if v.Type != "" && !v.Type.valid() {
			return nil, fmt.Errorf("token: key %s: unknown token type %q", v.ID, v.Type)
		}
		if err := checkVerificationKey(v.Algorithm, v.Key); err != nil {
			return nil, fmt.Errorf("token: key %s: %w", v.ID, err)
		}
		if prev, dup := ks.byID[v.ID]; dup {
			if signing != nil && v.ID == signing.id && prev.Algorithm == v.Algorithm && publicEqual(prev.Key, v.Key) {
				continue // the signing key listed again among the verification keys
			}
			return nil, fmt.Errorf("token: key id %s appears twice", v.ID)
		}
		ks.byID[v.ID] = &v
	}
	return ks, nil
}

// Signing returns the key that signs, or nil.
func (ks *KeySet) Signing() *SigningKey {
	if ks == nil {
		return nil
	}
	return ks.signing
}

// Lookup returns the verification key with the given id.
func (ks *KeySet) Lookup(kid string) (*VerificationKey, bool) {
	if ks == nil {
		return nil, false
	}
	k, ok := ks.byID[kid]
	return k, ok
}

// IDs returns the ids of every verification key, sorted.
func (ks *KeySet) IDs() []string {
	if ks == nil {
		return nil
	}
	ids := make([]string, 0, len(ks.byID))
	for id := range ks.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// KeySource hands an Issuer the current key set. KeySet is called on every Issue and Verify,
// so it must be cheap (an atomic load); it may return a different set each time, as keys
// rotate or are revoked.
type KeySource interface {
	KeySet() *KeySet
}

// StaticKeys is a KeySource that always returns the same set, for tests and programs that
// manage their keys themselves.
type StaticKeys struct{ Set *KeySet }

// KeySet implements KeySource.
func (s StaticKeys) KeySet() *KeySet { return s.Set }

func checkPublicKey(alg string, public crypto.PublicKey) error {
	switch alg {
	case ES256:
		k, ok := public.(*ecdsa.PublicKey)
		if !ok || k.Curve != elliptic.P256() {
			return fmt.Errorf("token: %s needs a P-256 ECDSA key, got %T", alg, public)
		}
	case EdDSA:
		k, ok := public.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("token: %s needs an Ed25519 key, got %T", alg, public)
		}
	case RS256:
		k, ok := public.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("token: %s needs an RSA key, got %T", alg, public)
		}
		if k.N.BitLen() < MinRSABits {
			return fmt.Errorf("token: %s needs an RSA key of at least %d bits, got %d", alg, MinRSABits, k.N.BitLen())
		}
	default:
		return fmt.Errorf("token: %q is not a public-key algorithm", alg)
	}
	return nil
}

func checkVerificationKey(alg string, key any) error {
	if HMAC(alg) {
		secret, ok := key.([]byte)
		if !ok || len(secret) == 0 {
			return fmt.Errorf("%s needs a non-empty []byte secret, got %T", alg, key)
		}
		return nil
	}
	return checkPublicKey(alg, key)
}

func publicEqual(a, b any) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if e, ok := a.(equaler); ok {
		return e.Equal(b)
	}
	return false
}

// methodFor returns golang-jwt's verifying method for alg.
func methodFor(alg string) jwt.SigningMethod {
	switch alg {
	case ES256:
		return jwt.SigningMethodES256
	case EdDSA:
		return jwt.SigningMethodEdDSA
	case RS256:
		return jwt.SigningMethodRS256
	case HS256:
		return jwt.SigningMethodHS256
	case HS384:
		return jwt.SigningMethodHS384
	case HS512:
		return jwt.SigningMethodHS512
	}
	return nil
}
