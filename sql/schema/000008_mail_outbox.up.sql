-- The mail outbox. A message is written here in the same transaction as the change that causes
-- it (a registration, a password reset request), so it exists exactly when that change
-- committed; a worker sends it afterwards and retries until it succeeds or gives up. No request
-- waits on SMTP, and an SMTP outage delays mail rather than losing it.
--
-- The body is rendered when the message is queued and may hold a one-time link. It is kept only
-- while the message may still be sent: sending or giving up empties it (the CHECK below makes
-- that a rule of the table), leaving the kind, recipient, subject and timestamps to diagnose.
CREATE TABLE mail_outbox (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind            text NOT NULL,
    recipient       text NOT NULL,
    subject         text NOT NULL,
    text_body       text NOT NULL,
    html_body       text NOT NULL,
    -- pending until sent; failed once the worker gave up (attempts exhausted, a permanent SMTP
    -- rejection, or discard_after passed).
    status          text NOT NULL DEFAULT 'pending',
    -- Attempts started, counted when a worker claims the message.
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A worker's claim: while locked_until is in the future, no other worker takes the message.
    -- claim_id names the claim, so that a worker whose claim expired and was taken over cannot
    -- record an outcome for the newer one.
    locked_until    timestamptz,
    claim_id        uuid,
    -- Why the last attempt failed: an SMTP reply or a network error, never a body.
    last_error      text,
    -- After this instant the message is worthless (its link has expired) and is not sent.
    discard_after   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    failed_at       timestamptz,
    CONSTRAINT mail_outbox_kind_check CHECK (kind ~ '^[a-z][a-z0-9_]{0,63}$'),
    CONSTRAINT mail_outbox_recipient_check CHECK (length(recipient) BETWEEN 3 AND 254),
    CONSTRAINT mail_outbox_status_check CHECK (status IN ('pending', 'sent', 'failed')),
    CONSTRAINT mail_outbox_attempts_check CHECK (attempts >= 0),
    CONSTRAINT mail_outbox_finished_scrubbed_check CHECK (status = 'pending' OR (text_body = '' AND html_body = ''))
);

-- The worker's claim: due pending messages, oldest due first.
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE status = 'pending';

-- The purge of finished messages past their retention.
CREATE INDEX mail_outbox_finished_idx ON mail_outbox (coalesce(sent_at, failed_at)) WHERE status <> 'pending';

-- Every queued message wakes the workers of every instance (they LISTEN on this channel) when
-- its transaction commits; a rolled-back message wakes nobody. Workers also poll, so a missed
-- notification only delays a message by one poll interval.
CREATE FUNCTION notify_mail_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('authly_mail_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER mail_outbox_notify
    AFTER INSERT ON mail_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_mail_outbox();
