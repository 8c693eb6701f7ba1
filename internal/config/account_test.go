package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/authly/authly/internal/password"
	"github.com/authly/authly/internal/ratelimit"
)

func defaultAccount() Account {
	return Account{
		PublicURL:            "http://127.0.0.1:8000",
		RequireVerification:  "email",
		RateLimitMailAddress: ratelimit.Limit{N: 3, Period: time.Hour},
		RateLimitMailIP:      ratelimit.Limit{N: 20, Period: time.Hour},
		PasswordHash:         "bcrypt",
		Argon2MemoryKiB:      19456,
		Argon2Iterations:     2,
		Argon2Parallelism:    1,
	}
}

func TestLoadParsesEveryAccountVariable(t *testing.T) {
	got, err := Load(t.Context(), withSecrets(
		envPublicURL, "https://auth.example.com/",
		envRequireVerification, "admin",
		envRateLimitMailAddr, "5/30m",
		envRateLimitMailIP, "0",
		envPasswordHash, "argon2id",
		envArgon2Memory, "65536",
		envArgon2Iterations, "3",
		envArgon2Parallelism, "2",
	))
	if err != nil {
		t.Fatal(err)
	}
	want := Account{
		PublicURL:            "https://auth.example.com",
		RequireVerification:  VerifyByAdmin,
		RateLimitMailAddress: ratelimit.Limit{N: 5, Period: 30 * time.Minute},
		RateLimitMailIP:      ratelimit.Limit{},
		PasswordHash:         "argon2id",
		Argon2MemoryKiB:      65536,
		Argon2Iterations:     3,
		Argon2Parallelism:    2,
	}
	if !reflect.DeepEqual(got.Account, want) {
		t.Errorf("Account =\n%+v\nwant\n%+v", got.Account, want)
	}
	if h := got.PasswordHasher(); h != (password.Argon2id{MemoryKiB: 65536, Iterations: 3, Parallelism: 2}) {
		t.Errorf("PasswordHasher = %#v", h)
	}
	got, err = Load(t.Context(), vars(envBcryptCost, "11", envPublicURL, "http://localhost:8080/auth"))
	if err != nil {
		t.Fatal(err)
	}
	if h := got.PasswordHasher(); h != (password.Bcrypt{Cost: 11}) {
		t.Errorf("PasswordHasher = %#v, want bcrypt at AUTHLY_BCRYPT_COST", h)
	}
	if got.Account.PublicURL != "http://localhost:8080/auth" {
		t.Errorf("PublicURL = %q: a path prefix is kept", got.Account.PublicURL)
	}
}

func TestLoadRejectsBadAccountValues(t *testing.T) {
	tests := []struct {
		name string
		kv   []string
		want []string
	}{
		{"a relative public URL", []string{envPublicURL, "/auth"}, []string{"AUTHLY_PUBLIC_URL: must be an absolute http:// or https:// URL"}},
		{"a public URL of another scheme", []string{envPublicURL, "ftp://auth.example.com"}, []string{"AUTHLY_PUBLIC_URL: must be an absolute"}},
		{"a public URL with a query", []string{envPublicURL, "https://auth.example.com/?x=1"}, []string{"AUTHLY_PUBLIC_URL: must be an absolute"}},
		{"a public URL with an empty query", []string{envPublicURL, "https://auth.example.com/?"}, []string{"AUTHLY_PUBLIC_URL: must be an absolute"}},
		{"a public URL with a fragment", []string{envPublicURL, "https://auth.example.com/#top"}, []string{"AUTHLY_PUBLIC_URL: must be an absolute"}},
		{"a public URL with credentials", []string{envPublicURL, "https://u:p@auth.example.com"}, []string{"AUTHLY_PUBLIC_URL: must be an absolute"}},
		{"an unknown verification mode", []string{envRequireVerification, "sometimes"}, []string{"AUTHLY_REQUIRE_VERIFICATION: must be one of email, admin, off"}},
		{"a malformed mail limit", []string{envRateLimitMailAddr, "lots"}, []string{"AUTHLY_RATE_LIMIT_MAIL_ADDRESS: must be"}},
		{"an unknown hash", []string{envPasswordHash, "md5"}, []string{"AUTHLY_PASSWORD_HASH: must be one of bcrypt, argon2id"}},
		{"too little Argon2 memory", []string{envPasswordHash, "argon2id", envArgon2Memory, "1024"}, []string{"AUTHLY_ARGON2_MEMORY_KIB: must be a whole number from 8192 to 262144 KiB"}},
		{"no Argon2 passes", []string{envPasswordHash, "argon2id", envArgon2Iterations, "0"}, []string{"AUTHLY_ARGON2_ITERATIONS: must be a whole number from 1 to 16"}},
		{"Argon2 settings with bcrypt", []string{envArgon2Memory, "65536"}, []string{"AUTHLY_ARGON2_MEMORY_KIB: is only read when AUTHLY_PASSWORD_HASH=argon2id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(t.Context(), vars(tt.kv...))
			assertProblems(t, err, tt.want...)
		})
	}
}
