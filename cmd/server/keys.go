package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/config"
	"github.com/authly/authly/internal/database"
	"github.com/authly/authly/internal/keys"
	"github.com/authly/authly/internal/keys/pkcs11"
	"github.com/authly/authly/internal/token"
)

const keysUsage = `Usage: authly keys list
       authly keys rotate
       authly keys revoke KID

Manages the token-signing keys of the key store (see README.md, "Signing keys").

  list         print every key ever made, newest first: kid, algorithm, state, backend and
               when it was created, started signing and was retired or revoked
  rotate       make the next key sign now, and publish a new next key; refused while the
               next key has been published for less than AUTHLY_JWKS_MAX_AGE
  revoke KID   withdraw a key that may be compromised: it leaves the JWKS, and every token
               it signed is refused by every instance within seconds; revoking the key that
               signs makes the next one sign at once

The key store needs AUTHLY_KEY_ENCRYPTION_KEY (generated in the data directory in embedded
mode) or AUTHLY_SIGNING_BACKEND=pkcs11.
`

var keysCommand = command{usage: keysUsage, run: keysCmd}

// keysCmd checks its arguments, then opens the key store and runs one subcommand.
func keysCmd(ctx context.Context, inv invocation) error {
	if len(inv.args) == 0 {
		return usageErrorf("keys needs a subcommand: list, rotate or revoke")
	}
	sub, args := inv.args[0], inv.args[1:]
	switch sub {
	case "list", "rotate":
		if err := noArguments("keys "+sub, args); err != nil {
			return err
		}
	case "revoke":
		if len(args) != 1 {
			return usageErrorf("keys revoke takes one key id (got %d arguments)", len(args))
		}
		if !token.ValidKeyID(args[0]) {
			return usageErrorf("keys revoke: %q is not a key id (see authly keys list)", args[0])
		}
	default:
		return usageErrorf("unknown keys subcommand %q (want list, rotate or revoke)", sub)
	}

	env, err := prepare(ctx, inv.getenv, inv.stderr)
	if err != nil {
		return err
	}
	defer env.close()
	if err := database.MigrateUp(env.url); err != nil {
		return err
	}
	pool, err := database.Open(ctx, env.url, dbOptions(env.cfg))
	if err != nil {
		return err
	}
	defer pool.Close()
	store, closeStore, err := openKeys(ctx, env.cfg, pool, env.log)
	if err != nil {
		return err
	}
	if store == nil {
		return errors.New("keys: no key store: set AUTHLY_KEY_ENCRYPTION_KEY (or AUTHLY_SIGNING_BACKEND=pkcs11)")
	}
	defer closeStore()

	switch sub {
	case "list":
		list, err := store.List(ctx)
		if err != nil {
			return err
		}
		return printKeys(inv.stdout, list)
	case "rotate":
		k, err := store.Rotate(ctx)
		if err != nil {
			return fmt.Errorf("keys rotate: %w", err)
		}
		fmt.Fprintf(inv.stdout, "rotated: %s (%s) signs now; every instance follows within seconds\n", k.ID, k.Algorithm)
		return nil
	default: // revoke
		k, err := store.Revoke(ctx, args[0])
		if errors.Is(err, keys.ErrNotFound) {
			return fmt.Errorf("keys revoke: no key %q (see authly keys list)", args[0])
		}
		if err != nil {
			return fmt.Errorf("keys revoke: %w", err)
		}
		fmt.Fprintf(inv.stdout, "revoked: %s; tokens it signed are refused by every instance within seconds\n", k.ID)
		return nil
	}
}

// printKeys writes one line per key, with a header.
func printKeys(w io.Writer, list []keys.Key) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALGORITHM\tSTATE\tBACKEND\tCREATED\tACTIVATED\tENDED")
	for _, k := range list {
		ended := k.RetiredAt
		if !k.RevokedAt.IsZero() {
			ended = k.RevokedAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.State, k.Backend,
			stamp(k.CreatedAt), stamp(k.ActivatedAt), stamp(ended))
	}
	return tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// openKeys opens the key store when there is one to open: with a KEK (from the configuration
// or, in embedded mode, the data directory) or the pkcs11 backend. It returns a nil store
// otherwise. Under an HMAC JWT_ALGORITHM the store makes ES256 keys, which only verify, so
// that a later switch to ES256 finds its keys published. The returned function releases the
// PKCS #11 token.
func openKeys(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, log *slog.Logger) (*keys.Store, func(), error) {
	if len(cfg.Keys.KEK) == 0 && cfg.Keys.SigningBackend != keys.BackendPKCS11 {
		return nil, func() {}, nil
	}
	alg := cfg.JWTAlgorithm
	if !config.PublicKeyAlgorithm(alg) {
		alg = token.ES256
	}
	opts := keys.Options{
		DB: pool, Algorithm: alg, Backend: cfg.Keys.SigningBackend, KEK: cfg.Keys.KEK,
		TokenLifetime: cfg.RefreshTokenTTL, RotationInterval: cfg.Keys.RotationInterval,
		JWKSMaxAge: cfg.Keys.JWKSMaxAge, Logger: log,
	}
	release := func() {}
	if cfg.Keys.SigningBackend == keys.BackendPKCS11 {
		tok, err := pkcs11.Open(pkcs11.Config{Module: cfg.Keys.PKCS11Module, TokenLabel: cfg.Keys.PKCS11TokenLabel, PIN: cfg.Keys.PKCS11PIN})
		if err != nil {
			return nil, nil, err
		}
		opts.HSM = tok
		release = func() {
			if err := tok.Close(); err != nil {
				log.Warn("closing the PKCS #11 token", "err", err)
			}
		}
	}
	store, err := keys.Open(ctx, opts)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("opening the signing-key store: %w", err)
	}
	return store, release, nil
}

// keySource is the token.KeySource of store: nil, not a nil *keys.Store, without one.
func keySource(store *keys.Store) token.KeySource {
	if store == nil {
		return nil
	}
	return store
}
