package oauth

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/database"
	"github.com/authly/authly/internal/testdb"
)

func TestTheOAuthMigrationGoesDownAndUpAgain(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Options{DB: pool})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, pool: pool, svc: svc, clock: &clock{t: time.Now()}}
	c, _ := e.client(webApp())
	alice := e.user("alice")
	_, resp := e.authorize(c, alice, "openid")
	g, err := svc.RedeemCode(ctx, c, exchange(c, resp.Code), Actor{}, openSession)
	if err != nil {
		t.Fatal(err)
	}
	firstParty := uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO sessions (id, user_id, expires_at, absolute_expires_at)
		VALUES ($1, $2, now() + interval '1 hour', now() + interval '1 hour')`, firstParty, alice); err != nil {
		t.Fatal(err)
	}
	pool.Close()

	// Down to the version before this migration, past any that came after it.
	for {
		v, _, err := database.Version(url)
		if err != nil {
			t.Fatal(err)
		}
		if v < 9 {
			break
		}
		if err := database.MigrateDown(url, 1); err != nil {
			t.Fatalf("down: %v", err)
		}
	}
	if v, dirty, err := database.Version(url); err != nil || dirty || v >= 9 {
		t.Fatalf("after down: version %d dirty %v (%v)", v, dirty, err)
	}
	pool, err = pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var tables, columns, oauthSessions, firstPartySessions int
	if err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'oauth%' OR table_name = 'browser_sessions'),
		(SELECT count(*) FROM information_schema.columns WHERE table_name IN ('sessions', 'tokens') AND column_name IN ('client_id', 'scope')),
		(SELECT count(*) FROM sessions WHERE id = $1),
		(SELECT count(*) FROM sessions WHERE id = $2)`, g.SessionID, firstParty).
		Scan(&tables, &columns, &oauthSessions, &firstPartySessions); err != nil {
		t.Fatal(err)
	}
	if tables != 0 || columns != 0 || oauthSessions != 0 || firstPartySessions != 1 {
		t.Fatalf("after down: %d oauth tables, %d columns, %d client sessions, %d first-party sessions; "+
			"want the client's session gone with the schema and the first-party one kept", tables, columns, oauthSessions, firstPartySessions)
	}
	pool.Close()

	if err := database.MigrateUp(url); err != nil {
		t.Fatalf("up again: %v", err)
	}
	pool, err = pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var builtIn int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM oauth_scopes WHERE built_in`).Scan(&builtIn); err != nil || builtIn != 4 {
		t.Fatalf("after up: %d built-in scopes (%v), want 4", builtIn, err)
	}
}
