-- Progressive login lockout (docs/security.md). An account's state stays in
-- users.failed_login_attempts and users.locked_until; last_failed_login_at lets a count of old
-- failures lapse, so that one typo a month never adds up to a lock.
ALTER TABLE users ADD COLUMN last_failed_login_at timestamptz;

-- Login names that match no account are locked exactly like accounts, so that hammering a name
-- answers the same whether or not it exists. Keyed by the lower-cased login name; rows whose
-- count has lapsed are deleted by the periodic cleanup.
CREATE TABLE login_failures (
    login_name      text PRIMARY KEY,
    failed_attempts integer NOT NULL,
    locked_until    timestamptz,
    last_failed_at  timestamptz NOT NULL,
    CONSTRAINT login_failures_failed_attempts_check CHECK (failed_attempts >= 0)
);

CREATE INDEX login_failures_last_failed_at_idx ON login_failures (last_failed_at);

-- login_failure_count is the failure count after one more failure: a count whose last failure
-- is at or before forget_before has lapsed and starts again at 1. It is capped far below
-- integer overflow.
CREATE FUNCTION login_failure_count(attempts integer, last_failed timestamptz, forget_before timestamptz)
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN last_failed IS NULL OR last_failed <= forget_before THEN 1
        ELSE least(attempts, 1000000) + 1
    END
$$;

-- login_lock_until is the one lockout rule, shared by accounts and unknown names: from the
-- threshold-th consecutive failure on, the login is locked for base_seconds, doubled for each
-- failure beyond the threshold, and never longer than max_seconds. NULL means not locked. The
-- exponent is capped so the arithmetic cannot overflow.
CREATE FUNCTION login_lock_until(attempts integer, threshold integer, base_seconds double precision,
                                 max_seconds double precision, at timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN threshold > 0 AND attempts >= threshold THEN
            at + make_interval(secs => least(max_seconds,
                base_seconds * power(2::double precision, least(attempts - threshold, 60))))
    END
$$;

-- A failed login is not a change to the account: an update that touches nothing but the
-- lockout state leaves updated_at alone. Every other update moves it, as before.
CREATE FUNCTION set_users_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    lockout_state CONSTANT text[] := ARRAY['failed_login_attempts', 'locked_until', 'last_failed_login_at'];
    rest_new jsonb := to_jsonb(NEW) - lockout_state - 'updated_at';
    rest_old jsonb := to_jsonb(OLD) - lockout_state - 'updated_at';
BEGIN
    IF rest_new = rest_old AND to_jsonb(NEW) - 'updated_at' <> to_jsonb(OLD) - 'updated_at' THEN
        NEW.updated_at := OLD.updated_at;
    ELSE
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER users_set_updated_at ON users;
CREATE TRIGGER users_set_updated_at
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_users_updated_at();
