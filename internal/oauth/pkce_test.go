package oauth

import (
	"strings"
	"testing"
)

func TestPKCE(t *testing.T) {
	t.Parallel()

	t.Run("the S256 challenge of RFC 7636 Appendix B's verifier is the one the RFC gives", func(t *testing.T) {
		if got := S256Challenge(rfcVerifier); got != rfcChallenge {
			t.Fatalf("S256Challenge = %s, want %s", got, rfcChallenge)
		}
		if !VerifyPKCE(rfcChallenge, rfcVerifier) {
			t.Fatal("the RFC's pair does not verify")
		}
		if !ValidS256Challenge(rfcChallenge) {
			t.Fatal("the RFC's challenge is refused")
		}
	})

	verifiers := []struct {
		name     string
		verifier string
		valid    bool
	}{
		{"43 characters, the shortest", strings.Repeat("a", 43), true},
		{"128 characters, the longest", strings.Repeat("Z", 128), true},
		{"every unreserved character", "ABCXYZabcxyz0189-._~" + strings.Repeat("q", 23), true},
		{"42 characters", strings.Repeat("a", 42), false},
		{"129 characters", strings.Repeat("a", 129), false},
		{"a plus sign", strings.Repeat("a", 42) + "+", false},
		{"a slash", strings.Repeat("a", 42) + "/", false},
		{"padding", strings.Repeat("a", 42) + "=", false},
		{"a space", strings.Repeat("a", 42) + " ", false},
		{"a non-ASCII letter", strings.Repeat("a", 41) + "é", false},
		{"nothing", "", false},
	}
	for _, tc := range verifiers {
		t.Run("a verifier of "+tc.name+" is judged by RFC 7636's syntax", func(t *testing.T) {
			if got := ValidCodeVerifier(tc.verifier); got != tc.valid {
				t.Fatalf("ValidCodeVerifier = %v, want %v", got, tc.valid)
			}
			if got := VerifyPKCE(S256Challenge(tc.verifier), tc.verifier); got != tc.valid {
				t.Fatalf("VerifyPKCE of its own challenge = %v, want %v", got, tc.valid)
			}
		})
	}

	t.Run("a different verifier does not verify", func(t *testing.T) {
		other := rfcVerifier[:42] + "Y"
		if VerifyPKCE(rfcChallenge, other) {
			t.Fatal("a verifier differing in its last character verified")
		}
	})

	t.Run("plain is refused: the verifier itself is not an S256 challenge", func(t *testing.T) {
		if VerifyPKCE(rfcVerifier, rfcVerifier) {
			t.Fatal("the verifier verified against itself as if plain")
		}
	})

	challenges := []struct {
		name      string
		challenge string
	}{
		{"too short", rfcChallenge[:42]},
		{"too long", rfcChallenge + "A"},
		{"with padding", rfcChallenge[:42] + "="},
		{"in standard base64", strings.ReplaceAll(rfcChallenge, "-", "+")},
		{"with stray bits in its last character", rfcChallenge[:42] + "N"},
	}
	for _, tc := range challenges {
		t.Run("a challenge "+tc.name+" is malformed", func(t *testing.T) {
			if ValidS256Challenge(tc.challenge) {
				t.Fatalf("ValidS256Challenge(%q) = true", tc.challenge)
			}
		})
	}
}
