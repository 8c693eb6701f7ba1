package pkcs11_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/keys"
	"github.com/authly/authly/internal/keys/pkcs11"
	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/token"
)

const (
	testTokenLabel = "authly-test"
	testPIN        = "7310-test-pin"
	testSOPIN      = "5204-test-so-pin"
)

// softhsm is the token every test of this binary uses: SoftHSM2, initialised in a
// temporary directory by TestMain.
var softhsm pkcs11.Config

func TestMain(m *testing.M) {
	code, err := withSoftHSM(func() int { return testdb.Main(m) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "pkcs11 tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// softHSMModules are where Debian and other distributions install the SoftHSM2 module.
var softHSMModules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
}

// withSoftHSM gives SoftHSM2 a configuration and a fresh token in a temporary directory,
// runs run, and removes the directory. SOFTHSM2_CONF must be set before the module loads.
func withSoftHSM(run func() int) (int, error) {
	module := os.Getenv("AUTHLY_TEST_PKCS11_MODULE")
	for _, candidate := range softHSMModules {
		if module != "" {
			break
		}
		if _, err := os.Stat(candidate); err == nil {
			module = candidate
		}
	}
	if module == "" {
		return 0, fmt.Errorf("the SoftHSM2 module was not found in %s; install it (Debian: apt-get install softhsm2) or set AUTHLY_TEST_PKCS11_MODULE", strings.Join(softHSMModules, ", "))
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return 0, fmt.Errorf("softhsm2-util not found; install SoftHSM2 (Debian: apt-get install softhsm2)")
	}
	dir, err := os.MkdirTemp("", "authly-softhsm-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return 0, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return 0, err
	}
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return 0, err
	}
	out, err := exec.Command(util, "--init-token", "--free", "--label", testTokenLabel, "--pin", testPIN, "--so-pin", testSOPIN).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	softhsm = pkcs11.Config{Module: module, TokenLabel: testTokenLabel, PIN: testPIN}
	return run(), nil
}

func openToken(t *testing.T) *pkcs11.Token {
	t.Helper()
	tok, err := pkcs11.Open(softhsm)
	if err != nil {
		t.Fatalf("pkcs11.Open: %v", err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

func TestHSMKeysSignTokensThatGolangJWTVerifies(t *testing.T) {
	ctx := context.Background()
	hsm := openToken(t)
	for _, alg := range []string{token.ES256, token.RS256} {
		t.Run("a "+alg+" key made in the token signs tokens that verify with its public key", func(t *testing.T) {
			label := "authly-test-sign-" + strings.ToLower(alg)
			signer, ref, err := hsm.Generate(ctx, label, alg)
			if err != nil {
				t.Fatal(err)
			}
			defer hsm.Destroy(ctx, ref)
			if ref.Label != label || len(ref.ID) != 16 {
				t.Fatalf("reference %+v", ref)
			}
			switch alg {
			case token.ES256:
				if _, ok := signer.Public().(*ecdsa.PublicKey); !ok {
					t.Fatalf("public key %T", signer.Public())
				}
			case token.RS256:
				if _, ok := signer.Public().(*rsa.PublicKey); !ok {
					t.Fatalf("public key %T", signer.Public())
				}
			}

			sk, err := token.NewSigningKey("hsm-"+strings.ToLower(alg), alg, signer)
			if err != nil {
				t.Fatal(err)
			}
			set, err := token.NewKeySet(sk)
			if err != nil {
				t.Fatal(err)
			}
			is, err := token.NewIssuer(token.Config{Algorithm: alg, Keys: token.StaticKeys{Set: set}, Issuer: "authly-test",
				AccessTTL: time.Minute, RefreshTTL: time.Hour, CacheSize: -1})
			if err != nil {
				t.Fatal(err)
			}
			// ECDSA signatures are random: several cover r and s of every length.
			for range 20 {
				issued, err := is.Issue(token.Access, uuid.New(), uuid.New(), time.Time{})
				if err != nil {
					t.Fatalf("Issue with the HSM key: %v", err)
				}
				parsed, err := jwt.NewParser(jwt.WithValidMethods([]string{alg})).
					Parse(issued.Token, func(*jwt.Token) (any, error) { return signer.Public(), nil })
				if err != nil || !parsed.Valid {
					t.Fatalf("golang-jwt refused a token signed in the HSM: %v", err)
				}
				if _, err := is.Verify(token.Access, issued.Token); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestHSMKeysCannotBeExtracted(t *testing.T) {
	ctx := context.Background()
	hsm := openToken(t)
	signer, ref, err := hsm.Generate(ctx, "authly-test-extract", token.ES256)
	if err != nil {
		t.Fatal(err)
	}
	defer hsm.Destroy(ctx, ref)

	// A separate crypto11 session on the same token reads the private key's attributes.
	c, err := crypto11.Configure(&crypto11.Config{Path: softhsm.Module, TokenLabel: softhsm.TokenLabel, Pin: softhsm.PIN})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pair, err := c.FindKeyPair(ref.ID, []byte(ref.Label))
	if err != nil || pair == nil {
		t.Fatalf("FindKeyPair: %v", err)
	}
	attrs, err := c.GetAttributes(pair, []crypto11.AttributeType{crypto11.CkaExtractable, crypto11.CkaSensitive, crypto11.CkaToken})
	if err != nil {
		t.Fatal(err)
	}
	for attr, want := range map[crypto11.AttributeType]byte{crypto11.CkaExtractable: 0, crypto11.CkaSensitive: 1, crypto11.CkaToken: 1} {
		a := attrs[attr]
		if a == nil || len(a.Value) != 1 || a.Value[0] != want {
			t.Errorf("attribute %#x = %v, want %d", attr, a, want)
		}
	}
	if !pair.Public().(*ecdsa.PublicKey).Equal(signer.Public()) {
		t.Fatal("found another key")
	}
}

func TestHSMKeysOutliveTheSession(t *testing.T) {
	ctx := context.Background()
	first := openToken(t)
	_, ref, err := first.Generate(ctx, "authly-test-reopen", token.ES256)
	if err != nil {
		t.Fatal(err)
	}
	second := openToken(t) // as another process or a restart would
	signer, err := second.Find(ctx, ref)
	if err != nil {
		t.Fatalf("Find from another session: %v", err)
	}
	if _, err := token.NewSigningKey("reopened", token.ES256, signer); err != nil {
		t.Fatal(err)
	}
	if err := second.Destroy(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Find(ctx, ref); err == nil {
		t.Fatal("a destroyed key is still found")
	}
	if err := first.Destroy(ctx, ref); err != nil {
		t.Fatalf("destroying a key that is gone: %v", err)
	}
	if _, _, err := first.Generate(ctx, "authly-test-eddsa", token.EdDSA); err == nil {
		t.Fatal("an EdDSA key was made")
	}
}

func TestOpenRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  pkcs11.Config
	}{
		{"a wrong PIN", pkcs11.Config{Module: softhsm.Module, TokenLabel: softhsm.TokenLabel, PIN: "wrong-pin"}},
		{"an unknown token label", pkcs11.Config{Module: softhsm.Module, TokenLabel: "no-such-token", PIN: softhsm.PIN}},
		{"a module that does not exist", pkcs11.Config{Module: "/nonexistent/libpkcs11.so", TokenLabel: softhsm.TokenLabel, PIN: softhsm.PIN}},
		{"no PIN", pkcs11.Config{Module: softhsm.Module, TokenLabel: softhsm.TokenLabel}},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			tok, err := pkcs11.Open(tc.cfg)
			if err == nil {
				tok.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), testPIN) || (tc.cfg.PIN != "" && strings.Contains(err.Error(), tc.cfg.PIN)) {
				t.Fatalf("the error shows the PIN: %v", err)
			}
		})
	}
}

// TestKeyStoreWithTheHSM runs the key store on the pkcs11 backend: the database holds only
// public keys and references, tokens verify with the published keys, and a revoked key is
// deleted from the token.
func TestKeyStoreWithTheHSM(t *testing.T) {
	ctx := context.Background()
	hsm := openToken(t)
	pool := testdb.Pool(t)
	store, err := keys.Open(ctx, keys.Options{DB: pool, Backend: keys.BackendPKCS11, HSM: hsm,
		TokenLifetime: 24 * time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("keys.Open: %v", err)
	}
	type row struct {
		kid, state, backend string
		private             []byte
		hsmID               []byte
		label               *string
	}
	read := func(pool *pgxpool.Pool) map[string]row {
		rows, err := pool.Query(ctx, "SELECT kid, state, backend, private_key, hsm_key_id, hsm_label FROM signing_keys")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]row{}
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.kid, &r.state, &r.backend, &r.private, &r.hsmID, &r.label); err != nil {
				t.Fatal(err)
			}
			out[r.kid] = r
		}
		return out
	}
	rows := read(pool)
	if len(rows) != 2 {
		t.Fatalf("keys %v, want a current and a next", rows)
	}
	var current row
	for _, r := range rows {
		if r.backend != keys.BackendPKCS11 || r.private != nil || len(r.hsmID) == 0 || r.label == nil || *r.label != "authly-"+r.kid {
			t.Fatalf("row %+v: want a pkcs11 reference and no private key", r)
		}
		if r.state == keys.StateCurrent {
			current = r
		}
	}
	if _, err := hsm.Find(ctx, keys.HSMRef{ID: current.hsmID, Label: *current.label}); err != nil {
		t.Fatalf("the current key is not in the token: %v", err)
	}

	is, err := token.NewIssuer(token.Config{Algorithm: token.ES256, Keys: store, Issuer: "authly-test",
		AccessTTL: time.Minute, RefreshTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := is.Issue(token.Access, uuid.New(), uuid.New(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if issued.KeyID != current.kid {
		t.Fatalf("signed by %s, want %s", issued.KeyID, current.kid)
	}
	if _, err := is.Verify(token.Access, issued.Token); err != nil {
		t.Fatal(err)
	}

	if _, err := store.Revoke(ctx, current.kid); err != nil {
		t.Fatal(err)
	}
	if _, err := hsm.Find(ctx, keys.HSMRef{ID: current.hsmID, Label: *current.label}); err == nil {
		t.Fatal("the revoked key is still in the token")
	}
	if _, err := is.Verify(token.Access, issued.Token); err == nil {
		t.Fatal("a token of the revoked HSM key still verifies")
	}
	next, err := is.Issue(token.Access, uuid.New(), uuid.New(), time.Time{})
	if err != nil {
		t.Fatalf("no key signs after the revocation: %v", err)
	}
	if _, err := is.Verify(token.Access, next.Token); err != nil {
		t.Fatal(err)
	}
}
