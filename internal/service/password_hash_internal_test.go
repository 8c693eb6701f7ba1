package service

import (
	"strings"
	"testing"
	"time"

	"github.com/authly/authly/internal/hashpool"
	"github.com/authly/authly/internal/password"
	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/token"
)

// The dummy hash an unknown login name is checked against is made with the configured
// algorithm and parameters, so that the unknown name costs what a known one does.
func TestTheDummyHashUsesTheConfiguredAlgorithm(t *testing.T) {
	for _, tc := range []struct {
		hasher password.Hasher
		prefix string
	}{
		{password.Bcrypt{Cost: 5}, "$2a$05$"},
		{password.Argon2id{MemoryKiB: password.MinArgon2MemoryKiB, Iterations: 1, Parallelism: 1}, "$argon2id$v=19$m=8192,t=1,p=1$"},
	} {
		pool, err := hashpool.New(hashpool.Options{Hasher: tc.hasher})
		if err != nil {
			t.Fatal(err)
		}
		issuer, err := token.NewIssuer(token.Config{Algorithm: "HS256", AccessKey: []byte("test-access-secret-0123456789abcdef0123456789"),
			RefreshKey: []byte("test-refresh-secret-0123456789abcdef012345678"), Issuer: "authly-test", AccessTTL: time.Minute, RefreshTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Deps{Pool: testdb.Pool(t), Tokens: issuer, Hasher: pool})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(s.dummyHash), tc.prefix) {
			t.Errorf("dummy hash %q, want %s…", s.dummyHash, tc.prefix)
		}
	}
}
