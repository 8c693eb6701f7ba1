package password

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

var (
	right = []byte("correct horse battery staple")
	wrong = []byte("correct horse battery stapler")
)

// cheapArgon2id keeps the tests fast; the defaults are checked separately.
var cheapArgon2id = Argon2id{MemoryKiB: MinArgon2MemoryKiB, Iterations: 1, Parallelism: 1}

func TestArgon2idHashesAreFreshlySaltedPHCStrings(t *testing.T) {
	phc := regexp.MustCompile(`^\$argon2id\$v=19\$m=8192,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	a, err := cheapArgon2id.Hash(right)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cheapArgon2id.Hash(right)
	if err != nil {
		t.Fatal(err)
	}
	if !phc.Match(a) {
		t.Errorf("hash %s is not a PHC string with the parameters, a 16-byte salt and a 32-byte hash", a)
	}
	if string(a) == string(b) {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

func TestArgon2idHashesAreWhatTheRFCFunctionComputes(t *testing.T) {
	// The PHC string is decoded by hand and recomputed with argon2.IDKey, so that the encoding
	// (field order, base64 without padding) is checked independently of parseArgon2id.
	hash, err := cheapArgon2id.Hash(right)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(hash), "$")
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		t.Fatal(err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		t.Fatal(err)
	}
	want := argon2.IDKey(right, salt, 1, MinArgon2MemoryKiB, 1, 32)
	if subtle.ConstantTimeCompare(key, want) != 1 {
		t.Error("the encoded hash is not argon2id(password, salt, t=1, m=8192, p=1)")
	}
}

func TestVerifyChecksBothAlgorithms(t *testing.T) {
	argonHash, err := cheapArgon2id.Hash(right)
	if err != nil {
		t.Fatal(err)
	}
	bcryptHash, err := Bcrypt{Cost: bcrypt.MinCost}.Hash(right)
	if err != nil {
		t.Fatal(err)
	}
	for name, hash := range map[string][]byte{"argon2id": argonHash, "bcrypt": bcryptHash} {
		if ok, err := Verify(hash, right); !ok || err != nil {
			t.Errorf("%s: Verify(right) = %v, %v", name, ok, err)
		}
		if ok, err := Verify(hash, wrong); ok || err != nil {
			t.Errorf("%s: Verify(wrong) = %v, %v", name, ok, err)
		}
	}
}

func TestVerifyRefusesMalformedAndExtravagantHashes(t *testing.T) {
	good, err := cheapArgon2id.Hash(right)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(good), "$")
	tests := map[string]string{
		"an empty hash":                      "",
		"an unknown scheme":                  "$argon2i$" + strings.Join(parts[2:], "$"),
		"another version":                    strings.Replace(string(good), "v=19", "v=16", 1),
		"parameters in another order":        strings.Replace(string(good), "m=8192,t=1,p=1", "t=1,m=8192,p=1", 1),
		"memory beyond the bound":            strings.Replace(string(good), "m=8192", fmt.Sprintf("m=%d", MaxArgon2MemoryKiB+1), 1),
		"iterations beyond the bound":        strings.Replace(string(good), "t=1", "t=1000", 1),
		"a salt that is not base64":          strings.Replace(string(good), parts[4], "!!!!", 1),
		"a missing field":                    strings.Join(parts[:5], "$"),
		"a bcrypt hash cut short":            "$2a$04$abc",
		"text that is no hash at all":        "correct horse battery staple",
		"a PHC string with a padded payload": string(good) + "=",
	}
	for name, hash := range tests {
		t.Run(name, func(t *testing.T) {
			ok, err := Verify([]byte(hash), right)
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Errorf("Verify = %v, %v; want ErrMalformedHash", ok, err)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	argonHash, err := cheapArgon2id.Hash(right)
	if err != nil {
		t.Fatal(err)
	}
	bcrypt4, err := Bcrypt{Cost: 4}.Hash(right)
	if err != nil {
		t.Fatal(err)
	}
	moreMemory := cheapArgon2id
	moreMemory.MemoryKiB *= 2
	moreTime := cheapArgon2id
	moreTime.Iterations++
	tests := []struct {
		name   string
		hasher Hasher
		hash   []byte
		want   bool
	}{
		{"an Argon2id hash with the same parameters is kept", cheapArgon2id, argonHash, false},
		{"an Argon2id hash with less memory is replaced", moreMemory, argonHash, true},
		{"an Argon2id hash with fewer passes is replaced", moreTime, argonHash, true},
		{"a bcrypt hash is replaced by Argon2id", cheapArgon2id, bcrypt4, true},
		{"a bcrypt hash at the same cost is kept", Bcrypt{Cost: 4}, bcrypt4, false},
		{"a bcrypt hash at another cost is replaced", Bcrypt{Cost: 5}, bcrypt4, true},
		{"an Argon2id hash is replaced by bcrypt", Bcrypt{Cost: 4}, argonHash, true},
		{"garbage is replaced", Bcrypt{Cost: 4}, []byte("garbage"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.hasher.NeedsRehash(tt.hash); got != tt.want {
				t.Errorf("NeedsRehash = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConstructorsCheckTheirParameters(t *testing.T) {
	if a, err := NewArgon2id(DefaultArgon2MemoryKiB, DefaultArgon2Iterations, DefaultArgon2Parallelism); err != nil ||
		a.String() != "m=19456,t=2,p=1" || a.MemoryBytes() != 19<<20 {
		t.Errorf("the OWASP defaults: %v, %v", a, err)
	}
	if _, err := NewArgon2id(1024, 0, 0); err == nil ||
		!strings.Contains(err.Error(), "memory") || !strings.Contains(err.Error(), "iterations") || !strings.Contains(err.Error(), "parallelism") {
		t.Errorf("bad Argon2id parameters: %v; want every one named", err)
	}
	if _, err := NewBcrypt(3); err == nil {
		t.Error("a bcrypt cost of 3 was accepted")
	}
	if b, err := NewBcrypt(12); err != nil || b.Cost != 12 {
		t.Errorf("NewBcrypt(12) = %v, %v", b, err)
	}
}

func TestBcryptRefusesPasswordsItWouldTruncate(t *testing.T) {
	if _, err := (Bcrypt{Cost: 4}).Hash([]byte(strings.Repeat("a", 73))); !errors.Is(err, bcrypt.ErrPasswordTooLong) {
		t.Errorf("Hash(73 bytes) error = %v, want bcrypt.ErrPasswordTooLong", err)
	}
}
