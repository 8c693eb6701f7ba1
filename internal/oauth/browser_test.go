package oauth

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestBrowserSessions(t *testing.T) {
	t.Parallel()

	t.Run("a session is found by its cookie, which is stored only as a digest", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		alice := e.user("alice")
		s, cookie := e.browserSession(alice)
		if len(cookie) != 43 || !s.AuthTime.Equal(e.clock.Now()) || !s.ExpiresAt.Equal(e.clock.Now().Add(DefaultBrowserSessionMaxLifetime)) {
			t.Fatalf("session %+v, cookie of %d characters", s, len(cookie))
		}
		var stored []byte
		if err := e.pool.QueryRow(ctx, `SELECT secret_hash FROM browser_sessions WHERE id = $1`, s.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(cookie))
		if !bytes.Equal(stored, sum[:]) {
			t.Fatalf("stored %x, want the SHA-256 of the cookie", stored)
		}
		got, err := e.svc.LookupBrowserSession(ctx, cookie)
		if err != nil || got.ID != s.ID || got.UserID != alice || !slices.Equal(got.AMR, []string{"pwd"}) || got.IP != "198.51.100.7" {
			t.Fatalf("lookup %+v, %v", got, err)
		}
	})

	t.Run("a cookie that names no live session means the user must sign in", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		_, cookie := e.browserSession(e.user("alice"))
		for _, bad := range []string{"", "garbage", cookie[:42], cookie + "A", cookie[:42] + "!", cookie[:42] + flip(cookie[42])} {
			_, err := e.svc.LookupBrowserSession(ctx, bad)
			wantCode(t, err, CodeLoginRequired)
		}
	})

	t.Run("a session ends after its idle timeout unless it is touched", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		s, cookie := e.browserSession(e.user("alice"))
		e.clock.Advance(DefaultBrowserSessionIdleTimeout - time.Minute)
		touched, err := e.svc.TouchBrowserSession(ctx, s.ID, "203.0.113.5", "new browser")
		if err != nil || !touched.LastSeenAt.Equal(e.clock.Now()) || touched.IP != "203.0.113.5" || !touched.ExpiresAt.Equal(s.ExpiresAt) {
			t.Fatalf("touched %+v, %v; want seen now, from the new address, with the same end", touched, err)
		}
		e.clock.Advance(DefaultBrowserSessionIdleTimeout - time.Minute)
		if _, err := e.svc.LookupBrowserSession(ctx, cookie); err != nil {
			t.Fatalf("within the idle timeout of the touch: %v", err)
		}
		e.clock.Advance(2 * time.Minute)
		_, err = e.svc.LookupBrowserSession(ctx, cookie)
		wantCode(t, err, CodeLoginRequired)
		_, err = e.svc.TouchBrowserSession(ctx, s.ID, "", "")
		wantCode(t, err, CodeLoginRequired)
	})

	t.Run("a session ends at its absolute end however often it is used", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, func(o *Options) {
			o.BrowserSessionIdleTimeout = time.Hour
			o.BrowserSessionMaxLifetime = 3 * time.Hour
		})
		s, cookie := e.browserSession(e.user("alice"))
		for range 5 {
			e.clock.Advance(50 * time.Minute)
			if _, err := e.svc.TouchBrowserSession(ctx, s.ID, "", ""); err != nil && e.clock.Now().Before(s.ExpiresAt) {
				t.Fatalf("touch before the end: %v", err)
			}
		}
		_, err := e.svc.LookupBrowserSession(ctx, cookie)
		wantCode(t, err, CodeLoginRequired)
	})

	t.Run("a revoked session, or one of a deactivated user, is gone", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		alice, bob := e.user("alice"), e.user("bob")
		s, cookie := e.browserSession(alice)
		ended, err := e.svc.RevokeBrowserSession(ctx, s.ID, BrowserSessionLogout)
		if err != nil || !ended {
			t.Fatalf("revoke: %v, %v", ended, err)
		}
		if again, _ := e.svc.RevokeBrowserSession(ctx, s.ID, BrowserSessionLogout); again {
			t.Fatal("revoking twice ended it twice")
		}
		if again, err := e.svc.RevokeBrowserSession(ctx, uuid.New(), BrowserSessionLogout); again || err != nil {
			t.Fatalf("revoking an unknown session: %v, %v", again, err)
		}
		_, err = e.svc.LookupBrowserSession(ctx, cookie)
		wantCode(t, err, CodeLoginRequired)

		_, one := e.browserSession(alice)
		_, two := e.browserSession(alice)
		_, bobs := e.browserSession(bob)
		n, err := e.svc.RevokeUserBrowserSessions(ctx, alice, BrowserSessionRevoked)
		if err != nil || n != 2 {
			t.Fatalf("revoked %d, %v; want alice's two live sessions", n, err)
		}
		for _, c := range []string{one, two} {
			_, err := e.svc.LookupBrowserSession(ctx, c)
			wantCode(t, err, CodeLoginRequired)
		}
		if _, err := e.svc.LookupBrowserSession(ctx, bobs); err != nil {
			t.Fatalf("bob's session went too: %v", err)
		}
		e.deactivate(bob)
		_, err = e.svc.LookupBrowserSession(ctx, bobs)
		wantCode(t, err, CodeLoginRequired)
	})
}

// flip returns another base64url character than c.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}
