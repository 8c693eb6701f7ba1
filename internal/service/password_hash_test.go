package service_test

import (
	"context"
	"strings"
	"testing"

	"github.com/authly/authly/internal/password"
	"github.com/authly/authly/internal/service"
)

// cheapArgon2id keeps the tests fast; the parameters are what matters, not their cost.
var cheapArgon2id = password.Argon2id{MemoryKiB: password.MinArgon2MemoryKiB, Iterations: 1, Parallelism: 1}

func withPasswordHasher(h password.Hasher) option {
	return func(d *service.Deps) { d.PasswordHasher = h }
}

func (d *domain) storedHash(username string) string {
	d.t.Helper()
	var h string
	if err := d.pool.QueryRow(context.Background(), `SELECT password_hash FROM users WHERE username = $1`, username).Scan(&h); err != nil {
		d.t.Fatal(err)
	}
	return h
}

func TestArgon2idHashesNewPasswords(t *testing.T) {
	t.Parallel()
	d := newDomain(t, withPasswordHasher(cheapArgon2id))
	d.verifiedUser("ara")
	if h := d.storedHash("ara"); !strings.HasPrefix(h, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("stored hash %q, want an Argon2id PHC string", h)
	}
	d.login("ara")
	if _, _, err := d.svc.PasswordLogin(context.Background(), "ara", "wrong password", testClient); answer(err) != service.CodeInvalidCredentials {
		t.Fatalf("a wrong password: %s", answer(err))
	}
}

// A login replaces a hash made with another algorithm or cost with one made as configured now,
// and the password keeps working; a failed login replaces nothing.
func TestLoginsUpgradeOutdatedHashes(t *testing.T) {
	t.Parallel()
	steps := []struct {
		name   string
		hasher password.Hasher
		prefix string
	}{
		{"bcrypt at cost 5 replaces cost 4", password.Bcrypt{Cost: 5}, "$2a$05$"},
		{"argon2id replaces bcrypt", cheapArgon2id, "$argon2id$v=19$m=8192,t=1,p=1$"},
		{"more argon2id memory replaces less", password.Argon2id{MemoryKiB: 2 * password.MinArgon2MemoryKiB, Iterations: 1, Parallelism: 1}, "$argon2id$v=19$m=16384,t=1,p=1$"},
		{"bcrypt replaces argon2id", password.Bcrypt{Cost: 4}, "$2a$04$"},
	}
	first := newDomain(t, withPasswordHasher(password.Bcrypt{Cost: 4}))
	first.verifiedUser("upg")
	pool := first.pool
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			d := newDomainOn(t, pool, withPasswordHasher(step.hasher))
			before := d.storedHash("upg")
			if _, _, err := d.svc.PasswordLogin(context.Background(), "upg", "wrong password", testClient); err == nil {
				t.Fatal("a wrong password logged in")
			}
			if d.storedHash("upg") != before {
				t.Fatal("a failed login replaced the hash")
			}
			d.login("upg")
			after := d.storedHash("upg")
			if !strings.HasPrefix(after, step.prefix) {
				t.Fatalf("after the login the hash is %q, want %s…", after, step.prefix)
			}
			d.login("upg")
			if d.storedHash("upg") != after {
				t.Fatal("an up-to-date hash was replaced again")
			}
		})
	}
}
