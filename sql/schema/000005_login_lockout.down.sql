DROP TRIGGER IF EXISTS users_set_updated_at ON users;
CREATE TRIGGER users_set_updated_at
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
DROP FUNCTION IF EXISTS set_users_updated_at();
DROP FUNCTION IF EXISTS login_lock_until(integer, integer, double precision, double precision, timestamptz);
DROP FUNCTION IF EXISTS login_failure_count(integer, timestamptz, timestamptz);
DROP TABLE IF EXISTS login_failures;
ALTER TABLE users DROP COLUMN IF EXISTS last_failed_login_at;
