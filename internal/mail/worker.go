package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	netmail "net/mail"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/metrics"
)

// WorkerOptions configure a Worker. Zero values take the defaults given.
type WorkerOptions struct {
	// From is the From header of every message, such as "Authly <no-reply@example.com>".
	// Required.
	From    string
	Logger  *slog.Logger     // nil discards
	Metrics *metrics.Metrics // nil records nothing

	BatchSize    int           // messages claimed at once; default 10
	PollInterval time.Duration // how often to look for due messages without a notification; default 5s
	// Lease is how long a claim keeps other workers off its messages; the worker renews it
	// every Lease/3 while it works on them. Default 2m: the longest a crashed worker's
	// messages wait before another worker takes them.
	Lease       time.Duration
	SendTimeout time.Duration // bounds one message's delivery; default 1m
	MaxAttempts int           // attempts before a message is given up; default 50
	RetryBase   time.Duration // the first retry's delay, doubled after each failure; default 10s
	RetryMax    time.Duration // the longest delay between attempts; default 15m
	// Retention is how long sent and failed messages (their bodies already emptied) stay in
	// the outbox for inspection; default 7 days; negative keeps them.
	Retention time.Duration
	// Jitter returns a random duration in [0, d]; nil uses math/rand/v2.
	Jitter func(d time.Duration) time.Duration
}

func (o WorkerOptions) withDefaults() WorkerOptions {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 10
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 50
	}
	def(&o.PollInterval, 5*time.Second)
	def(&o.Lease, 2*time.Minute)
	def(&o.SendTimeout, time.Minute)
	def(&o.RetryBase, 10*time.Second)
	def(&o.RetryMax, 15*time.Minute)
	if o.Retention == 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.RetryMax < o.RetryBase {
		o.RetryMax = o.RetryBase
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Jitter == nil {
		o.Jitter = func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d + 1)
		}
	}
	return o
}

// Worker drains the outbox: it claims due messages, hands them to its Sender, and records the
// outcome, retrying failures with exponential backoff and jitter.
//
// Any number of workers, in one process or in several instances, may drain one outbox. A
// worker claims a small batch in one statement with FOR UPDATE SKIP LOCKED and commits the
// claim, a lease, before sending anything; the lease keeps every other worker off those
// messages and is renewed while the worker works on them, so in normal operation no message is
// sent twice. Delivery is still at least once, not exactly once: if a worker stalls for longer
// than its lease (a process paused, or cut off from the database) after the server accepted a
// message but before the worker recorded it as sent, the lease expires and another worker
// sends the message again; and an SMTP server may accept a message whose acceptance reply is
// then lost. The copies carry the same Message-ID. A message is never lost to a crash: an
// unrecorded claim simply expires.
//
// The worker wakes when a message is queued (LISTEN on the channel the outbox's trigger
// notifies at commit, on a connection of its own) and every PollInterval in any case, so it
// keeps working, only later, when notifications are unavailable (behind a transaction-pooling
// proxy, say).
type Worker struct {
	pool   *pgxpool.Pool
	q      *db.Queries
	sender Sender
	opts   WorkerOptions
	log    *slog.Logger
}

// Result counts the outcomes of the attempts Drain made.
type Result struct {
	Sent    int // delivered
	Retried int // failed, to be tried again
	Failed  int // given up
}

// NewWorker returns a worker draining the outbox in pool's database through sender.
func NewWorker(pool *pgxpool.Pool, sender Sender, opts WorkerOptions) (*Worker, error) {
	if pool == nil || sender == nil {
		return nil, errors.New("mail: a worker needs a pool and a sender")
	}
	if _, err := netmail.ParseAddress(opts.From); err != nil {
		return nil, fmt.Errorf("mail: the From address %q: %w", opts.From, err)
	}
	opts = opts.withDefaults()
	return &Worker{pool: pool, q: db.New(pool), sender: sender, opts: opts, log: opts.Logger}, nil
}

// purgeInterval is how often Run deletes finished messages past their retention.
const purgeInterval = time.Hour

// purgeBatchSize bounds the rows one purge statement deletes.
const purgeBatchSize = 1000

// Run drains the outbox whenever a message is queued or PollInterval passes, and purges
// finished messages past their retention every hour, until ctx ends; then it returns nil. A
// message being sent when ctx ends is finished and recorded (within SendTimeout); claimed
// messages not yet tried are handed back at once. Database errors are logged and retried at
// the next poll.
func (w *Worker) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.listen(ctx, wake)
	}()
	defer wg.Wait()

	poll := time.NewTimer(0)
	defer poll.Stop()
	var lastPurge time.Time
	for {
		if _, err := w.Drain(ctx); err != nil && ctx.Err() == nil {
			w.log.WarnContext(ctx, "mail outbox: draining failed; retrying at the next poll", "err", err)
		}
		if w.opts.Retention > 0 && time.Since(lastPurge) >= purgeInterval && ctx.Err() == nil {
			if n, err := w.Purge(ctx); err != nil {
				w.log.WarnContext(ctx, "mail outbox: purging finished messages failed", "err", err)
			} else {
				lastPurge = time.Now()
				if n > 0 {
					w.log.InfoContext(ctx, "mail outbox: purged finished messages", "deleted", n)
				}
			}
		}
		poll.Reset(w.opts.PollInterval)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		}
	}
}

// Drain claims and processes batches of due messages until none is left due, and returns
// what happened to them. It stops early, with the context's error, when ctx ends.
func (w *Worker) Drain(ctx context.Context) (Result, error) {
	var total Result
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res, claimed, err := w.drainBatch(ctx)
		total.Sent += res.Sent
		total.Retried += res.Retried
		total.Failed += res.Failed
		if err != nil {
			return total, err
		}
		if claimed < w.opts.BatchSize {
			return total, nil
		}
	}
}

// Purge deletes sent and failed messages that finished longer than Retention ago, in
// bounded batches, and returns how many it deleted. Several instances may purge at once.
func (w *Worker) Purge(ctx context.Context) (int64, error) {
	if w.opts.Retention < 0 {
		return 0, nil
	}
	var total int64
	for {
		n, err := w.q.DeleteFinishedMail(ctx, db.DeleteFinishedMailParams{
			RetentionSeconds: w.opts.Retention.Seconds(), BatchSize: purgeBatchSize})
		total += n
		if err != nil || n < purgeBatchSize {
			return total, err
		}
	}
}

// drainBatch claims one batch and works through it.
func (w *Worker) drainBatch(ctx context.Context) (res Result, claimed int, err error) {
	claimID := uuid.New()
	rows, err := w.q.ClaimDueMail(ctx, db.ClaimDueMailParams{
		LeaseSeconds: w.opts.Lease.Seconds(), ClaimID: claimID, BatchSize: int32(w.opts.BatchSize)})
	if err != nil {
		return res, 0, fmt.Errorf("mail outbox: claiming: %w", err)
	}
	if len(rows) == 0 {
		return res, 0, nil
	}

	// Bookkeeping outlives ctx: a message the server accepted is recorded as sent even while
	// the worker stops, or it would be sent again.
	record, cancelRecord := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRecord()
	stopRenewing := w.renewLease(record, claimID)
	defer stopRenewing()

	for i, row := range rows {
		if ctx.Err() != nil {
			// Stopping: hand back what was not tried, uncounted, for another worker.
			if _, err := w.q.ReleaseMailClaim(record, claimID); err != nil {
				w.log.WarnContext(ctx, "mail outbox: handing back unsent messages failed; they wait for their lease to end",
					"messages", len(rows)-i, "err", err)
			}
			return res, len(rows), ctx.Err()
		}
		switch w.process(ctx, record, claimID, row) {
		case "sent":
			res.Sent++
		case "retried":
			res.Retried++
		case "failed":
			res.Failed++
		}
	}
	return res, len(rows), nil
}

// renewLease extends the claim's lease every Lease/3 until the returned function is called.
func (w *Worker) renewLease(ctx context.Context, claimID uuid.UUID) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(w.opts.Lease / 3)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				if _, err := w.q.ExtendMailClaim(ctx, db.ExtendMailClaimParams{
					LeaseSeconds: w.opts.Lease.Seconds(), ClaimID: claimID}); err != nil && ctx.Err() == nil {
					w.log.WarnContext(ctx, "mail outbox: renewing a claim failed", "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// process tries one claimed message and records the outcome: "sent", "retried", "failed", or
// "" when the outcome could not be recorded.
func (w *Worker) process(ctx, record context.Context, claimID uuid.UUID, row db.ClaimDueMailRow) string {
	kind := Kind(row.Kind)
	attrs := []any{"mail_id", row.ID, "kind", row.Kind, "to", row.Recipient, "attempt", row.Attempts}

	switch {
	case row.Expired:
		return w.giveUp(record, claimID, row, "expired before it could be sent", attrs)
	case int(row.Attempts) > w.opts.MaxAttempts:
		// Only a message whose attempts ended without an outcome (its worker died) gets here.
		return w.giveUp(record, claimID, row, fmt.Sprintf("no outcome after %d attempts", w.opts.MaxAttempts), attrs)
	}

	sendCtx, cancel := context.WithTimeout(ctx, w.opts.SendTimeout)
	err := w.sender.Send(sendCtx, Envelope{
		ID: row.ID, Kind: kind, From: w.opts.From, To: row.Recipient,
		Subject: row.Subject, Text: row.TextBody, HTML: row.HtmlBody, Date: row.CreatedAt,
	})
	cancel()

	switch {
	case err == nil:
		n, dbErr := w.q.MarkMailSent(record, db.MarkMailSentParams{ID: row.ID, ClaimID: claimID})
		if !w.recorded(record, n, dbErr, "sent", attrs) {
			return ""
		}
		w.opts.Metrics.Mail(row.Kind, "sent")
		w.log.InfoContext(ctx, "mail sent", attrs...)
		return "sent"
	case errors.Is(err, ErrRejected):
		return w.giveUp(record, claimID, row, describeError(err), attrs)
	case int(row.Attempts) >= w.opts.MaxAttempts:
		return w.giveUp(record, claimID, row, fmt.Sprintf("%d attempts failed; the last: %s", row.Attempts, describeError(err)), attrs)
	}

	delay := w.backoff(int(row.Attempts))
	n, dbErr := w.q.MarkMailRetry(record, db.MarkMailRetryParams{
		ID: row.ID, ClaimID: claimID, DelaySeconds: delay.Seconds(), LastError: describeError(err)})
	if !w.recorded(record, n, dbErr, "retry", attrs) {
		return ""
	}
	w.opts.Metrics.Mail(row.Kind, "retried")
	w.log.WarnContext(ctx, "mail not sent; it will be retried",
		append(attrs, "retry_in", delay.Round(time.Millisecond).String(), "err", describeError(err))...)
	return "retried"
}

// giveUp marks the message failed, which also empties its body.
func (w *Worker) giveUp(ctx context.Context, claimID uuid.UUID, row db.ClaimDueMailRow, reason string, attrs []any) string {
	n, err := w.q.MarkMailFailed(ctx, db.MarkMailFailedParams{ID: row.ID, ClaimID: claimID, LastError: reason})
	if !w.recorded(ctx, n, err, "failure", attrs) {
		return ""
	}
	w.opts.Metrics.Mail(row.Kind, "failed")
	w.log.ErrorContext(ctx, "mail given up", append(attrs, "reason", reason)...)
	return "failed"
}

// recorded reports whether an outcome update matched the message, logging why not otherwise.
func (w *Worker) recorded(ctx context.Context, n int64, err error, what string, attrs []any) bool {
	switch {
	case err != nil:
		// The lease runs out and the message is tried again: at least once, never lost.
		w.log.ErrorContext(ctx, "mail outbox: recording the "+what+" failed; the message will be tried again",
			append(attrs, "err", err)...)
		return false
	case n == 0:
		w.log.WarnContext(ctx, "mail outbox: the claim on a message ran out before its "+what+
			" was recorded; another worker has taken it over, so it may be delivered twice", attrs...)
		return false
	}
	return true
}

// backoff is the delay before the attempt after the attempt-th: RetryBase doubled for each
// earlier failure, capped at RetryMax, of which a random half is taken off ("equal jitter"),
// so that messages failed together by an outage do not all come back at the same instant.
func (w *Worker) backoff(attempt int) time.Duration {
	d := w.opts.RetryMax
	if shift := attempt - 1; shift < 30 {
		if b := w.opts.RetryBase << shift; b > 0 && b < d {
			d = b
		}
	}
	return d/2 + w.opts.Jitter(d/2)
}

// listen sends on wake whenever the outbox's trigger notifies, until ctx ends, reconnecting
// after a lost connection.
func (w *Worker) listen(ctx context.Context, wake chan<- struct{}) {
	for {
		err := w.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		w.log.WarnContext(ctx, "mail outbox: not notified of new mail; polling every "+w.opts.PollInterval.String()+" until it reconnects",
			"err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(w.opts.PollInterval, 5*time.Second)):
		}
	}
}

func (w *Worker) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	// A connection of its own, outside the pool, which it would otherwise hold forever.
	conn, err := pgx.ConnectConfig(ctx, w.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx) // the connection is done with either way
	}()
	if err := db.New(conn).ListenForMail(ctx); err != nil {
		return err
	}
	nudge := func() {
		select {
		case wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	nudge() // messages queued while nobody listened
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		nudge()
	}
}

// maxErrorLen bounds an error as stored in last_error and logged.
const maxErrorLen = 500

// describeError renders err for last_error and the log: on one line, control characters
// replaced, at most maxErrorLen bytes. Errors come from the network and the SMTP server and
// never contain a message's body; the password is never part of one.
func describeError(err error) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, err.Error())
	if len(s) > maxErrorLen {
		cut := maxErrorLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
