package mail

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/testdb"
)

// enqueue queues msgs in one transaction and returns their ids.
func enqueue(t *testing.T, pool *pgxpool.Pool, outbox *Outbox, msgs ...Message) []uuid.UUID {
	t.Helper()
	ctx := t.Context()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	q := db.New(pool).WithTx(tx)
	var ids []uuid.UUID
	for _, m := range msgs {
		id, err := outbox.Enqueue(ctx, q, m)
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		ids = append(ids, id)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

// verifyMessages returns n verification messages to distinct recipients, each with its own
// token in its link.
func verifyMessages(n int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Kind: KindVerifyEmail, To: fmt.Sprintf("user%03d@example.com", i), Data: Data{
			Username: fmt.Sprintf("user%03d", i),
			Link:     fmt.Sprintf("https://auth.example.com/verify?token=tok-%03d-%s", i, uuid.NewString()),
			ValidFor: time.Hour,
		}}
	}
	return msgs
}

// waitFor polls cond until it holds, failing the test after a minute; no test depends on
// how long it takes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countStatus(t *testing.T, q *db.Queries) map[string]int64 {
	t.Helper()
	rows, err := q.CountMailByStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, r := range rows {
		m[r.Status] = r.Messages
	}
	return m
}

// mailCounter reads authly_mail_messages_total for an outcome, summed over kinds.
func mailCounter(t *testing.T, m *metrics.Metrics, outcome string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != "authly_mail_messages_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					sum += metric.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// syncBuffer is a log destination shared by goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// plainSender sends to server without TLS (a loopback relay).
func plainSender(t *testing.T, server *testSMTP) *SMTPSender {
	t.Helper()
	s, err := NewSMTPSender(SMTPOptions{Server: SMTPServer{server.host(), server.port(), SecurityLoopbackPlain}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fastRetries makes a worker retry within milliseconds.
func fastRetries(o WorkerOptions) WorkerOptions {
	o.From = "Authly <no-reply@auth.example.com>"
	o.PollInterval = 50 * time.Millisecond
	o.RetryBase = 10 * time.Millisecond
	o.RetryMax = 100 * time.Millisecond
	return o
}

func newWorker(t *testing.T, pool *pgxpool.Pool, sender Sender, o WorkerOptions) *Worker {
	t.Helper()
	w, err := NewWorker(pool, sender, o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// runWorker runs w until the test ends.
func runWorker(t *testing.T, w *Worker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// deliveredIDs maps each received message's outbox id (from its Message-ID) to how many
// times it arrived.
func deliveredIDs(t *testing.T, server *testSMTP) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, r := range server.received() {
		m := parseMessage(t, r.Data)
		id, _, _ := strings.Cut(strings.Trim(m.Header.Get("Message-ID"), "<>"), "@")
		got[id]++
	}
	return got
}

func TestEnqueueCommitsAndRollsBackWithTheCallersTransaction(t *testing.T) {
	pool := testdb.Pool(t)
	q := db.New(pool)
	outbox := NewOutbox(mustTemplates(t, ""), "")
	ctx := t.Context()

	for _, commit := range []bool{false, true} {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := outbox.Enqueue(ctx, q.WithTx(tx), fullMessage(KindPasswordReset)); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		if commit {
			want = 1
		}
		if got := countStatus(t, q)["pending"]; got != want {
			t.Errorf("after commit=%v: %d pending messages, want %d", commit, got, want)
		}
	}

	// A message that cannot be rendered fails the caller's transaction instead of a message.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	bad := fullMessage(KindVerifyEmail)
	bad.Data.Link = ""
	if _, err := outbox.Enqueue(ctx, q.WithTx(tx), bad); err == nil {
		t.Fatal("Enqueue accepted a verification without a link")
	}
}

func TestWorkerDeliversRecordsAndForgetsTheBody(t *testing.T) {
	pool := testdb.Pool(t)
	q := db.New(pool)
	server := startSMTP(t, smtpConfig{})
	var logs syncBuffer
	m := metrics.New()
	w := newWorker(t, pool, plainSender(t, server), fastRetries(WorkerOptions{
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Metrics: m}))

	msgs := verifyMessages(3)
	ids := enqueue(t, pool, NewOutbox(mustTemplates(t, ""), ""), msgs...)
	res, err := w.Drain(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res != (Result{Sent: 3}) {
		t.Errorf("Drain = %+v, want 3 sent", res)
	}

	for i, id := range ids {
		row, err := q.GetMail(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if row.Status != "sent" || row.SentAt == nil || row.Attempts != 1 || row.LockedUntil != nil || row.ClaimID != nil {
			t.Errorf("row %d: status %s, sent_at %v, attempts %d, locked_until %v, claim %v", i, row.Status, row.SentAt, row.Attempts, row.LockedUntil, row.ClaimID)
		}
		if row.TextBody != "" || row.HtmlBody != "" {
			t.Errorf("row %d still holds its body, link included, after sending", i)
		}
		if row.Recipient != msgs[i].To || row.Kind != "verify_email" || row.Subject != "Confirm your email address" {
			t.Errorf("row %d kept %q / %q / %q", i, row.Recipient, row.Kind, row.Subject)
		}
	}
	delivered := deliveredIDs(t, server)
	for _, id := range ids {
		if delivered[id.String()] != 1 {
			t.Errorf("message %s arrived %d times", id, delivered[id.String()])
		}
	}
	for _, r := range server.received() {
		p := parseMessage(t, r.Data)
		i := strings.TrimSuffix(strings.TrimPrefix(r.To[0], "user"), "@example.com")
		if !strings.Contains(p.Text, msgs[atoi(i)].Data.Link) {
			t.Errorf("the message to %s lacks its own link", r.To[0])
		}
	}

	out := logs.String()
	for _, want := range []string{`"msg":"mail sent"`, `"kind":"verify_email"`, `"to":"user000@example.com"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{"tok-000", "token=", "Hello"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows a body or a token (%q):\n%s", secret, out)
		}
	}
	if got := mailCounter(t, m, "sent"); got != 3 {
		t.Errorf("authly_mail_messages_total{outcome=sent} = %v, want 3", got)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestAnSMTPOutageDelaysMailWithoutLosingOrDuplicatingAny(t *testing.T) {
	pool := testdb.Pool(t)
	q := db.New(pool)
	server := startSMTP(t, smtpConfig{})
	m := metrics.New()
	o := fastRetries(WorkerOptions{Metrics: m})
	o.MaxAttempts = 100_000 // the outage below must not exhaust them, however slow the machine
	w := newWorker(t, pool, plainSender(t, server), o)
	runWorker(t, w)
	outbox := NewOutbox(mustTemplates(t, ""), "")

	msgs := verifyMessages(20)
	ids := enqueue(t, pool, outbox, msgs[:5]...)
	waitFor(t, "the first 5 messages are sent", func() bool { return countStatus(t, q)["sent"] == 5 })

	server.stop()
	ids = append(ids, enqueue(t, pool, outbox, msgs[5:]...)...)
	waitFor(t, "every message queued during the outage has failed at least once", func() bool {
		for _, id := range ids[5:] {
			row, err := q.GetMail(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if row.LastError == nil || row.Attempts < 2 {
				return false
			}
		}
		return true
	})
	if got := countStatus(t, q); got["sent"] != 5 || got["pending"] != 15 {
		t.Fatalf("during the outage: %v, want 5 sent and 15 pending", got)
	}
	row, err := q.GetMail(t.Context(), ids[5])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(*row.LastError, "connection refused") || strings.Contains(*row.LastError, "token") {
		t.Errorf("last_error = %q, want the network error and nothing of the body", *row.LastError)
	}

	server.restart()
	waitFor(t, "every message is sent after the outage", func() bool { return countStatus(t, q)["sent"] == 20 })

	delivered := deliveredIDs(t, server)
	if len(delivered) != 20 {
		t.Errorf("%d distinct messages arrived, want 20", len(delivered))
	}
	for _, id := range ids {
		if n := delivered[id.String()]; n != 1 {
			t.Errorf("message %s arrived %d times, want once", id, n)
		}
	}
	if got := mailCounter(t, m, "retried"); got < 15 {
		t.Errorf("authly_mail_messages_total{outcome=retried} = %v, want at least 15", got)
	}
	if got := mailCounter(t, m, "sent"); got != 20 {
		t.Errorf("authly_mail_messages_total{outcome=sent} = %v, want 20", got)
	}
}

func TestTwoWorkersDrainOneOutboxWithoutDuplicates(t *testing.T) {
	url := testdb.URL(t)
	newPool := func() *pgxpool.Pool {
		pool, err := pgxpool.New(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return pool
	}
	// Two instances: each its own pool, its own sender and its own metrics.
	poolA, poolB := newPool(), newPool()
	server := startSMTP(t, smtpConfig{rendezvous: 2})
	const total = 200
	ids := enqueue(t, poolA, NewOutbox(mustTemplates(t, ""), ""), verifyMessages(total)...)

	metricsA, metricsB := metrics.New(), metrics.New()
	runWorker(t, newWorker(t, poolA, plainSender(t, server), fastRetries(WorkerOptions{BatchSize: 5, Metrics: metricsA})))
	runWorker(t, newWorker(t, poolB, plainSender(t, server), fastRetries(WorkerOptions{BatchSize: 5, Metrics: metricsB})))

	q := db.New(poolA)
	waitFor(t, "every message is sent", func() bool { return countStatus(t, q)["sent"] == total })

	if !server.rendezvousMet() {
		t.Error("the two workers never sent at the same time")
	}
	delivered := deliveredIDs(t, server)
	for _, id := range ids {
		if n := delivered[id.String()]; n != 1 {
			t.Errorf("message %s arrived %d times, want once", id, n)
		}
	}
	if n := len(server.received()); n != total {
		t.Errorf("the server received %d messages, want %d", n, total)
	}
	a, b := mailCounter(t, metricsA, "sent"), mailCounter(t, metricsB, "sent")
	if a+b != total || a == 0 || b == 0 {
		t.Errorf("worker A sent %v and worker B %v; want %d in all, shared", a, b, total)
	}
	t.Logf("worker A sent %v, worker B %v", a, b)
}

func TestTheWorkerWakesWhenMailIsQueued(t *testing.T) {
	pool := testdb.Pool(t)
	server := startSMTP(t, smtpConfig{})
	o := fastRetries(WorkerOptions{})
	o.PollInterval = time.Hour // only a notification can wake it within the test
	runWorker(t, newWorker(t, pool, plainSender(t, server), o))

	waitFor(t, "the worker listens", func() bool {
		var listening int
		err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state = 'idle' AND query LIKE '%LISTEN authly_mail_outbox%'`).Scan(&listening)
		if err != nil {
			t.Fatal(err)
		}
		return listening == 1
	})
	enqueue(t, pool, NewOutbox(mustTemplates(t, ""), ""), verifyMessages(1)...)
	waitFor(t, "the message arrives", func() bool { return len(server.received()) == 1 })
}

func TestTheWorkerGivesUpAfterMaxAttempts(t *testing.T) {
	pool := testdb.Pool(t)
	q := db.New(pool)
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	sender, err := NewSMTPSender(SMTPOptions{Server: SMTPServer{"127.0.0.1", port, SecurityLoopbackPlain}})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	m := metrics.New()
	o := fastRetries(WorkerOptions{Metrics: m, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	o.MaxAttempts = 3
	w := newWorker(t, pool, sender, o)
	ids := enqueue(t, pool, NewOutbox(mustTemplates(t, ""), ""), verifyMessages(1)...)

	waitFor(t, "the message is given up", func() bool {
		if _, err := w.Drain(t.Context()); err != nil {
			t.Fatal(err)
		}
		return countStatus(t, q)["failed"] == 1
	})
	row, err := q.GetMail(t.Context(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if row.Attempts != 3 || row.FailedAt == nil || row.TextBody != "" || row.HtmlBody != "" {
		t.Errorf("attempts %d, failed_at %v, body emptied %v", row.Attempts, row.FailedAt, row.TextBody == "" && row.HtmlBody == "")
	}
	if row.LastError == nil || !strings.Contains(*row.LastError, "3 attempts failed") {
		t.Errorf("last_error = %v", row.LastError)
	}
	if r, f := mailCounter(t, m, "retried"), mailCounter(t, m, "failed"); r != 2 || f != 1 {
		t.Errorf("retried %v and failed %v, want 2 and 1", r, f)
	}
	if out := logs.String(); !strings.Contains(out, `"level":"ERROR","msg":"mail given up"`) || !strings.Contains(out, `"to":"user000@example.com"`) {
		t.Errorf("the give-up is not logged as an error with its recipient:\n%s", out)
	}
}

func TestARejectedRecipientIsGivenUpAtOnce(t *testing.T) {
	pool := testdb.Pool(t)
	q := db.New(pool)
	server := startSMTP(t, smtpConfig{rejectRcpt: map[string]bool{"user000@example.com": true}})
	w := newWorker(t, pool, plainSender(t, server), fastRetries(WorkerOptions{}))
	ids := enqueue(t, pool, NewOutbox(mustTemplates(t, ""), ""), verifyMessages(2)...)

	res, err := w.Drain(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res != (Result{Sent: 1, Failed: 1}) {
		t.Errorf("Drain = %+v, want one sent and one failed", res)
	}
	row, err := q.GetMail(t.Context(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if row.Status != "failed" || row.Attempts != 1 || row.LastError == nil || !strings.Contains(*row.LastError, "No such user") {
		t.Errorf("status %s after %d attempts, last_error %v", row.Status, row.Attempts, row.LastError)
	}
}

func TestAMessagePastItsDiscardTimeIsNotSent(t *testing.T) {
	pool := testdb.Pool(t)
	q := db.New(pool)
	server := startSMTP(t, smtpConfig{})
	w := newWorker(t, pool, plainSender(t, server), fastRetries(WorkerOptions{}))
	msgs := verifyMessages(2)
	msgs[0].DiscardAfter = time.Now().Add(-time.Minute)
	msgs[1].DiscardAfter = time.Now().Add(time.Hour)
	ids := enqueue(t, pool, NewOutbox(mustTemplates(t, ""), ""), msgs...)

	res, err := w.Drain(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res != (Result{Sent: 1, Failed: 1}) {
		t.Errorf("Drain = %+v", res)
	}
	row, err := q.GetMail(t.Context(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if row.Status != "failed" || row.LastError == nil || !strings.Contains(*row.LastError, "expired") || row.TextBody != "" {
		t.Errorf("the stale message: status %s, last_error %v", row.Status, row.LastError)
	}
	if got := server.received(); len(got) != 1 || got[0].To[0] != msgs[1].To {
		t.Errorf("received %d messages, want only the fresh one", len(got))
	}
}

func TestAClaimKeepsOtherWorkersOffUntilItsLeaseEnds(t *testing.T) {
	pool := testdb.Pool(t)
	q := db.New(pool)
	server := startSMTP(t, smtpConfig{})
	w := newWorker(t, pool, plainSender(t, server), fastRetries(WorkerOptions{}))
	ids := enqueue(t, pool, NewOutbox(mustTemplates(t, ""), ""), verifyMessages(1)...)

	// A worker claims the message, then dies before recording anything.
	deadClaim := uuid.New()
	claimed, err := q.ClaimDueMail(t.Context(), db.ClaimDueMailParams{LeaseSeconds: 3600, ClaimID: deadClaim, BatchSize: 10})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %d rows", err, len(claimed))
	}
	if res, err := w.Drain(t.Context()); err != nil || res != (Result{}) {
		t.Fatalf("Drain during the lease = %+v, %v; want nothing done", res, err)
	}
	if n := len(server.received()); n != 0 {
		t.Fatalf("a claimed message was sent by another worker (%d)", n)
	}

	// The lease runs out.
	if _, err := pool.Exec(t.Context(), `UPDATE mail_outbox SET next_attempt_at = now(), locked_until = now() WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if res, err := w.Drain(t.Context()); err != nil || res != (Result{Sent: 1}) {
		t.Fatalf("Drain after the lease = %+v, %v; want one sent", res, err)
	}
	row, err := q.GetMail(t.Context(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if row.Status != "sent" || row.Attempts != 2 {
		t.Errorf("status %s after %d attempts, want sent after 2", row.Status, row.Attempts)
	}
	// The dead worker, coming back, cannot record an outcome over the newer claim's.
	if n, err := q.MarkMailFailed(t.Context(), db.MarkMailFailedParams{ID: ids[0], ClaimID: deadClaim, LastError: "late"}); err != nil || n != 0 {
		t.Errorf("a stale claim recorded an outcome: %d rows, %v", n, err)
	}
}

func TestPurgeDeletesOnlyFinishedMessagesPastRetention(t *testing.T) {
	pool := testdb.Pool(t)
	q := db.New(pool)
	server := startSMTP(t, smtpConfig{})
	o := fastRetries(WorkerOptions{})
	o.Retention = 24 * time.Hour
	w := newWorker(t, pool, plainSender(t, server), o)
	outbox := NewOutbox(mustTemplates(t, ""), "")
	sent := enqueue(t, pool, outbox, verifyMessages(2)...)
	if _, err := w.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	pending := enqueue(t, pool, outbox, verifyMessages(1)...)
	if _, err := pool.Exec(t.Context(), `UPDATE mail_outbox SET sent_at = now() - interval '25 hours' WHERE id = $1`, sent[0]); err != nil {
		t.Fatal(err)
	}

	n, err := w.Purge(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	if _, err := q.GetMail(t.Context(), sent[0]); err == nil {
		t.Error("the old sent message is still there")
	}
	for _, id := range []uuid.UUID{sent[1], pending[0]} {
		if _, err := q.GetMail(t.Context(), id); err != nil {
			t.Errorf("message %s was purged: %v", id, err)
		}
	}
}

func TestBackoffGrowsWithJitterUpToTheCap(t *testing.T) {
	low := &Worker{opts: WorkerOptions{RetryBase: 10 * time.Second, RetryMax: 15 * time.Minute,
		Jitter: func(time.Duration) time.Duration { return 0 }}}
	high := &Worker{opts: WorkerOptions{RetryBase: 10 * time.Second, RetryMax: 15 * time.Minute,
		Jitter: func(d time.Duration) time.Duration { return d }}}
	tests := []struct {
		attempt int
		full    time.Duration
	}{
		{1, 10 * time.Second},
		{2, 20 * time.Second},
		{3, 40 * time.Second},
		{7, 640 * time.Second},
		{8, 15 * time.Minute},
		{50, 15 * time.Minute},
		{1000, 15 * time.Minute},
	}
	for _, tt := range tests {
		if got := low.backoff(tt.attempt); got != tt.full/2 {
			t.Errorf("attempt %d, least jitter: %v, want %v", tt.attempt, got, tt.full/2)
		}
		if got := high.backoff(tt.attempt); got != tt.full {
			t.Errorf("attempt %d, most jitter: %v, want %v", tt.attempt, got, tt.full)
		}
	}
	random := WorkerOptions{RetryBase: time.Second, RetryMax: time.Minute}.withDefaults()
	w := &Worker{opts: random}
	for range 100 {
		if d := w.backoff(3); d < 2*time.Second || d > 4*time.Second {
			t.Fatalf("backoff(3) = %v, want within [2s, 4s]", d)
		}
	}
}

func TestNewWorkerRefusesABadFromAddress(t *testing.T) {
	pool := testdb.Pool(t)
	sender, err := NewFileSender(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewWorker(pool, sender, WorkerOptions{From: "not an address"}); err == nil {
		t.Error("NewWorker accepted a bad From")
	}
}
