-- The keys that sign access and refresh tokens, one row per key ever made. A key is
-- published as 'next' before it signs, signs while 'current', stays published as 'previous'
-- until every token it signed has expired, and is then 'retired'. A compromised key is
-- 'revoked': it leaves the published set at once.
--
-- No column holds a usable private key. A software key's private half is sealed with
-- AES-256-GCM under the key-encryption key, which never enters the database; a key made in
-- an HSM is only referenced by its PKCS #11 id and label. Both go when the key is retired
-- or revoked.
CREATE TABLE signing_keys (
    kid           text PRIMARY KEY,
    algorithm     text NOT NULL,
    state         text NOT NULL,
    backend       text NOT NULL,
    -- The public key as an X.509 SubjectPublicKeyInfo (DER).
    public_key    bytea NOT NULL,
    -- Software keys: nonce || AES-256-GCM(PKCS #8 DER), with the kid as associated data,
    -- and the id of the key-encryption key that sealed it.
    private_key   bytea,
    kek_id        text,
    -- HSM keys: CKA_ID and CKA_LABEL of the key pair on the token.
    hsm_key_id    bytea,
    hsm_label     text,
    created_at    timestamptz NOT NULL,
    activated_at  timestamptz,
    superseded_at timestamptz,
    retired_at    timestamptz,
    revoked_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT signing_keys_kid_check CHECK (kid ~ '^[A-Za-z0-9_-]{1,64}$'),
    CONSTRAINT signing_keys_algorithm_check CHECK (algorithm IN ('ES256', 'EdDSA', 'RS256')),
    CONSTRAINT signing_keys_state_check CHECK (state IN ('next', 'current', 'previous', 'retired', 'revoked')),
    CONSTRAINT signing_keys_backend_check CHECK (backend IN ('software', 'pkcs11')),
    -- A private half exists exactly while the key may still sign, and only for software keys.
    CONSTRAINT signing_keys_private_key_check CHECK (
        CASE WHEN state IN ('retired', 'revoked') THEN private_key IS NULL AND kek_id IS NULL
             ELSE (backend = 'software') = (private_key IS NOT NULL AND kek_id IS NOT NULL)
        END),
    CONSTRAINT signing_keys_hsm_check CHECK (
        backend = 'pkcs11' OR (hsm_key_id IS NULL AND hsm_label IS NULL)),
    CONSTRAINT signing_keys_hsm_ref_check CHECK (
        backend <> 'pkcs11' OR state IN ('retired', 'revoked') OR (hsm_key_id IS NOT NULL AND hsm_label IS NOT NULL)),
    CONSTRAINT signing_keys_timeline_check CHECK (
        (state NOT IN ('current', 'previous') OR activated_at IS NOT NULL)
        AND (state <> 'previous' OR superseded_at IS NOT NULL)
        AND (state <> 'retired' OR retired_at IS NOT NULL)
        AND (state <> 'revoked' OR revoked_at IS NOT NULL))
);

-- At most one key signs, and at most one waits to.
CREATE UNIQUE INDEX signing_keys_one_current_idx ON signing_keys (state) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_next_idx ON signing_keys (state) WHERE state = 'next';

CREATE TRIGGER signing_keys_set_updated_at
    BEFORE UPDATE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
