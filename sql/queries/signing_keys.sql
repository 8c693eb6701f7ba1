-- The key store of internal/keys. Every change runs in a transaction that holds the key
-- store's advisory lock (LockSigningKeys or TryLockSigningKeys), so one instance at a time
-- decides what rotates; the unique indexes on 'current' and 'next' hold the line as well.

-- name: LockSigningKeys :exec
-- Waits for the key store's lock, held until the transaction ends. The two numbers are
-- the lock's name: "auth" in ASCII and 7 for the migration that made the table.
SELECT pg_advisory_xact_lock(1635087464, 7);

-- name: TryLockSigningKeys :one
-- Takes the key store's lock if it is free; false means another instance holds it.
SELECT pg_try_advisory_xact_lock(1635087464, 7) AS locked;

-- name: GetSigningKeysFingerprint :one
-- What every instance polls: the ids and states of the published keys, in byte order. Any
-- rotation, retirement or revocation changes it, whatever order transactions commit in.
SELECT coalesce(string_agg(kid || ':' || state, ',' ORDER BY kid COLLATE "C"), '')::text AS fingerprint
FROM signing_keys
WHERE state IN ('next', 'current', 'previous');

-- name: ListPublishedSigningKeys :many
SELECT kid, algorithm, state, backend, public_key, private_key, kek_id, hsm_key_id, hsm_label,
       created_at, activated_at, superseded_at
FROM signing_keys
WHERE state IN ('next', 'current', 'previous')
ORDER BY kid COLLATE "C";

-- name: ListSigningKeys :many
-- Every key ever made, newest first, without any private material.
SELECT kid, algorithm, state, backend, hsm_label, created_at, activated_at, superseded_at,
       retired_at, revoked_at
FROM signing_keys
ORDER BY created_at DESC, kid COLLATE "C";

-- name: GetSigningKeyForUpdate :one
SELECT kid, algorithm, state, backend, hsm_key_id, hsm_label
FROM signing_keys
WHERE kid = @kid
FOR UPDATE;

-- name: InsertSigningKey :exec
INSERT INTO signing_keys (kid, algorithm, state, backend, public_key, private_key, kek_id,
                          hsm_key_id, hsm_label, created_at, activated_at)
VALUES (@kid, @algorithm, @state, @backend, @public_key, @private_key, @kek_id,
        @hsm_key_id, @hsm_label, @created_at, @activated_at);

-- name: ActivateSigningKey :execrows
-- The next key starts signing.
UPDATE signing_keys
SET state = 'current', activated_at = sqlc.arg(now)::timestamptz
WHERE kid = @kid AND state = 'next';

-- name: SupersedeSigningKey :execrows
-- The current key stops signing and stays published.
UPDATE signing_keys
SET state = 'previous', superseded_at = sqlc.arg(now)::timestamptz
WHERE kid = @kid AND state = 'current';

-- name: RetireSigningKey :execrows
-- A previous key whose tokens have all expired, or a next key that never signed, leaves the
-- published set, and its sealed private half is erased.
UPDATE signing_keys
SET state = 'retired', retired_at = sqlc.arg(now)::timestamptz, private_key = NULL, kek_id = NULL
WHERE kid = @kid AND state IN ('next', 'previous');

-- name: RevokeSigningKey :execrows
-- A compromised key leaves the published set at once, whatever its state, and its sealed
-- private half is erased.
UPDATE signing_keys
SET state = 'revoked', revoked_at = sqlc.arg(now)::timestamptz, private_key = NULL, kek_id = NULL
WHERE kid = @kid AND state <> 'revoked';
