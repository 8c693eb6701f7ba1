package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// PKCE (RFC 7636) binds an authorization code to the client that asked for it: the request
// carries code_challenge = BASE64URL(SHA256(code_verifier)), and only the holder of the
// verifier can redeem the code. Only S256 is accepted: with plain, the challenge is the
// verifier, so whoever sees the authorization request (a log, a browser extension, a
// history entry) can redeem the code (RFC 9700 §2.1.1).

// PKCEMethodS256 is the one code_challenge_method accepted.
const PKCEMethodS256 = "S256"

// s256ChallengeLen is the length of an S256 challenge: 32 bytes in unpadded base64url.
var s256ChallengeLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// ValidCodeVerifier reports whether v is a code_verifier of RFC 7636 §4.1: 43 to 128
// characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
func ValidCodeVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !isBase64URL(c) && c != '.' && c != '~' {
			return false
		}
	}
	return true
}

// ValidS256Challenge reports whether c can be an S256 code_challenge: the unpadded
// base64url encoding of a SHA-256 digest.
func ValidS256Challenge(c string) bool {
	if len(c) != s256ChallengeLen {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(c)
	return err == nil
}

// S256Challenge is the S256 code_challenge of a verifier (RFC 7636 §4.2).
func S256Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// VerifyPKCE reports whether verifier is well formed and its S256 challenge equals
// challenge. The comparison takes the same time wherever the two differ.
func VerifyPKCE(challenge, verifier string) bool {
	if !ValidCodeVerifier(verifier) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(S256Challenge(verifier)), []byte(challenge)) == 1
}
