package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/token"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

var (
	testKEK  = bytes.Repeat([]byte{0x5a}, KEKSize)
	otherKEK = bytes.Repeat([]byte{0xa5}, KEKSize)

	t0 = time.Date(2030, time.March, 14, 15, 9, 26, 0, time.UTC)
)

const (
	testTokenLifetime = 7 * 24 * time.Hour
	testIssuer        = "https://auth.authly.test"
)

// clock is a time source shared by the instances of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func testOptions(pool *pgxpool.Pool, clk *clock) Options {
	return Options{DB: pool, KEK: testKEK, TokenLifetime: testTokenLifetime, Now: clk.Now, Logger: quietLogger()}
}

func mustOpen(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// secondPool opens another pool on the database of url, as another instance would.
func newPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// states returns kid → state of every key in the database.
func states(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT kid, state FROM signing_keys")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var kid, state string
		if err := rows.Scan(&kid, &state); err != nil {
			t.Fatal(err)
		}
		out[kid] = state
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// kidIn returns the one kid in state, failing the test unless there is exactly one.
func kidIn(t *testing.T, st map[string]string, state string) string {
	t.Helper()
	var found []string
	for kid, s := range st {
		if s == state {
			found = append(found, kid)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d keys in state %s, want 1: %v", len(found), state, st)
	}
	return found[0]
}

func countIn(st map[string]string, state string) int {
	n := 0
	for _, s := range st {
		if s == state {
			n++
		}
	}
	return n
}

// jwksKids returns the kids of a JWKS body in order, failing on any member a public JWK of
// Authly's must not have.
func jwksKids(t *testing.T, body []byte) []string {
	t.Helper()
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("JWKS is not JSON: %v\n%s", err, body)
	}
	allowed := map[string]bool{"kty": true, "crv": true, "x": true, "y": true, "n": true, "e": true, "kid": true, "alg": true, "use": true}
	var kids []string
	for _, k := range doc.Keys {
		for member := range k {
			if !allowed[member] {
				t.Fatalf("JWKS key %v has the member %q", k["kid"], member)
			}
		}
		if k["use"] != "sig" {
			t.Errorf("JWKS key %v has use %v, want sig", k["kid"], k["use"])
		}
		kid, _ := k["kid"].(string)
		kids = append(kids, kid)
	}
	return kids
}

func newIssuer(t *testing.T, s *Store, clk *clock) *token.Issuer {
	t.Helper()
	is, err := token.NewIssuer(token.Config{Algorithm: s.alg, Keys: s, Issuer: testIssuer,
		AccessTTL: 30 * time.Minute, RefreshTTL: testTokenLifetime, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func issue(t *testing.T, is *token.Issuer, typ token.Type) token.Issued {
	t.Helper()
	issued, err := is.Issue(typ, uuid.New(), uuid.New(), time.Time{})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return issued
}

// eventually polls cond until it holds, failing after a generous deadline. Only used where
// another instance's background loop has to catch up; the deadline is not a timing claim.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
