-- The mail outbox (internal/mail). Every timestamp comes from the database's clock, so that
-- workers on several machines agree on what is due whatever their own clocks say.

-- name: EnqueueMail :one
-- Runs in the caller's transaction: the message exists exactly when the change that caused it
-- commits. The table's trigger notifies the workers at commit.
INSERT INTO mail_outbox (kind, recipient, subject, text_body, html_body, discard_after)
VALUES (@kind, @recipient, @subject, @text_body, @html_body, sqlc.narg(discard_after))
RETURNING id;

-- name: ClaimDueMail :many
-- Claims up to batch_size due messages for one worker, in one statement that commits before
-- anything is sent. SKIP LOCKED lets workers claim at the same moment without waiting on each
-- other or taking the same rows; the lease (locked_until, also the next due time) keeps the
-- claimed messages from every other worker until it runs out, so a crashed worker's messages
-- become due again by themselves. attempts counts the claim, so a message that crashes its
-- worker every time still runs out of attempts. expired is true for a message whose
-- discard_after has passed: it is not sent.
WITH due AS (
    SELECT m.id FROM mail_outbox m
    WHERE m.status = 'pending' AND m.next_attempt_at <= now()
    ORDER BY m.next_attempt_at, m.created_at
    LIMIT @batch_size
    FOR UPDATE SKIP LOCKED
)
UPDATE mail_outbox SET
    attempts = mail_outbox.attempts + 1,
    locked_until = now() + make_interval(secs => @lease_seconds::float8),
    next_attempt_at = now() + make_interval(secs => @lease_seconds::float8),
    claim_id = @claim_id::uuid
FROM due
WHERE mail_outbox.id = due.id
RETURNING mail_outbox.id, mail_outbox.kind, mail_outbox.recipient, mail_outbox.subject,
    mail_outbox.text_body, mail_outbox.html_body, mail_outbox.attempts, mail_outbox.created_at,
    (mail_outbox.discard_after IS NOT NULL AND mail_outbox.discard_after <= now())::boolean AS expired;

-- name: MarkMailSent :execrows
-- Records a delivery and drops the body, which may hold a one-time link. Matches nothing when
-- the claim was lost (its lease ran out and another worker claimed the message).
UPDATE mail_outbox SET
    status = 'sent', sent_at = now(), text_body = '', html_body = '',
    locked_until = NULL, claim_id = NULL, last_error = NULL
WHERE id = @id AND claim_id = @claim_id::uuid AND status = 'pending';

-- name: MarkMailRetry :execrows
-- Puts a message back to be tried again after delay_seconds.
UPDATE mail_outbox SET
    next_attempt_at = now() + make_interval(secs => @delay_seconds::float8),
    locked_until = NULL, claim_id = NULL, last_error = @last_error::text
WHERE id = @id AND claim_id = @claim_id::uuid AND status = 'pending';

-- name: MarkMailFailed :execrows
-- Gives up on a message and drops its body.
UPDATE mail_outbox SET
    status = 'failed', failed_at = now(), text_body = '', html_body = '',
    locked_until = NULL, claim_id = NULL, last_error = @last_error::text
WHERE id = @id AND claim_id = @claim_id::uuid AND status = 'pending';

-- name: ExtendMailClaim :execrows
-- Renews the lease of the messages of one claim that are still being worked on, so that a
-- slow SMTP server never lets another worker take a message that is being sent.
UPDATE mail_outbox SET
    locked_until = now() + make_interval(secs => @lease_seconds::float8),
    next_attempt_at = now() + make_interval(secs => @lease_seconds::float8)
WHERE claim_id = @claim_id::uuid AND status = 'pending';

-- name: ReleaseMailClaim :execrows
-- Hands the messages of one claim that were not tried back at once, with their attempt
-- uncounted: the worker is stopping.
UPDATE mail_outbox SET
    attempts = greatest(attempts - 1, 0), next_attempt_at = now(),
    locked_until = NULL, claim_id = NULL
WHERE claim_id = @claim_id::uuid AND status = 'pending';

-- name: ListenForMail :exec
-- Subscribes this connection to the outbox's notifications (the table's trigger sends them).
LISTEN authly_mail_outbox;

-- name: DeleteFinishedMail :execrows
-- Deletes up to batch_size sent or failed messages that finished more than retention_seconds
-- ago. SKIP LOCKED lets several instances purge at once.
DELETE FROM mail_outbox
WHERE mail_outbox.id IN (
    SELECT f.id FROM mail_outbox f
    WHERE f.status <> 'pending'
      AND coalesce(f.sent_at, f.failed_at) < now() - make_interval(secs => @retention_seconds::float8)
    LIMIT @batch_size
    FOR UPDATE SKIP LOCKED
);

-- name: GetMail :one
SELECT * FROM mail_outbox WHERE id = @id;

-- name: CountMailByStatus :many
SELECT status, count(*) AS messages FROM mail_outbox GROUP BY status ORDER BY status;
