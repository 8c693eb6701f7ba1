package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// opStats are one operation's outcomes as one worker saw them.
type opStats struct {
	ok       histogram // latency of 2xx answers
	rejected histogram // latency of every other answer
	statuses map[int]int64
	errors   int64 // no answer: transport error or timeout
	lost     int64 // refresh chains broken by a 401 on a token that was never presented before
	// done and okDone count completed requests by the fraction of each that lies inside
	// the window; see recorder.
	done, okDone float64
}

// recorder keeps one worker's outcomes. Latency, statuses and errors are those of the
// requests that start inside the measured window, measured to the end of the response body.
// Throughput counts each request by the share of its duration that lies inside the window,
// so requests that straddle an edge count in part: at 64 concurrent logins of 1.5 s each,
// the requests finish in waves of 64, and whole-request counting would swing by a wave
// (15% of a 10 s window) with the phase of the waves.
type recorder struct {
	from, to time.Time
	ops      map[string]*opStats
}

func newRecorder(from, to time.Time) *recorder {
	return &recorder{from: from, to: to, ops: map[string]*opStats{}}
}

func (r *recorder) op(name string) *opStats {
	s := r.ops[name]
	if s == nil {
		s = &opStats{statuses: map[int]int64{}}
		r.ops[name] = s
	}
	return s
}

func (r *recorder) counts(start time.Time) bool { return !start.Before(r.from) && start.Before(r.to) }

func (r *recorder) add(name string, start time.Time, status int, err error) {
	r.addEnded(name, start, time.Now(), status, err)
}

func (r *recorder) addEnded(name string, start, end time.Time, status int, err error) {
	lat := end.Sub(start)
	inside := earlier(end, r.to).Sub(later(start, r.from))
	var share float64
	switch {
	case inside <= 0:
	case lat <= 0:
		share = 1
	default:
		share = float64(inside) / float64(lat)
	}
	if share == 0 && !r.counts(start) {
		return
	}
	s := r.op(name)
	s.done += share
	if status >= 200 && status < 300 && err == nil {
		s.okDone += share
	}
	if !r.counts(start) {
		return
	}
	switch {
	case err != nil && status == 0:
		s.errors++
	case status >= 200 && status < 300:
		s.statuses[status]++
		s.ok.record(lat)
	default:
		s.statuses[status]++
		s.rejected.record(lat)
	}
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (r *recorder) lostRotation(name string, start time.Time) {
	if r.counts(start) {
		r.op(name).lost++
	}
}

func (r *recorder) merge(o *recorder) {
	for name, os := range o.ops {
		s := r.op(name)
		s.ok.merge(&os.ok)
		s.rejected.merge(&os.rejected)
		for st, n := range os.statuses {
			s.statuses[st] += n
		}
		s.errors += os.errors
		s.lost += os.lost
		s.done += os.done
		s.okDone += os.okDone
	}
}

// worker issues one request, or a few that belong together, per step, on its own
// connection.
type worker interface {
	step(ctx context.Context, rec *recorder)
	close()
}

// scenario is one workload of the benchmark.
type scenario struct {
	name        string
	about       string
	needsLogin  bool // needs verified users, so an admin
	bcryptBound bool // compared with the bcrypt ceiling
	// flood: the workers ignore Retry-After, as a careless or hostile client does, and ask
	// again the moment they are refused.
	flood     bool
	newWorker func(b *bench, c *conn, w int) (worker, error)
}

var scenarios = []scenario{
	{name: "register", about: "POST /api/v1/users, a new user each time", bcryptBound: true,
		newWorker: func(b *bench, c *conn, _ int) (worker, error) {
			return &registerWorker{b: b, c: c, honourRetryAfter: true}, nil
		}},
	{name: "register-flood", about: "POST /api/v1/users, a new user each time, ignoring Retry-After", bcryptBound: true, flood: true,
		newWorker: func(b *bench, c *conn, _ int) (worker, error) {
			return &registerWorker{b: b, c: c}, nil
		}},
	{name: "login", about: "POST /api/v1/auth/token, password grant", needsLogin: true, bcryptBound: true,
		newWorker: func(b *bench, c *conn, w int) (worker, error) {
			return &loginWorker{c: c, body: b.loginUsers[w%len(b.loginUsers)].loginBody, honourRetryAfter: true}, nil
		}},
	{name: "login-flood", about: "POST /api/v1/auth/token, password grant, ignoring Retry-After", needsLogin: true, bcryptBound: true, flood: true,
		newWorker: func(b *bench, c *conn, w int) (worker, error) {
			return &loginWorker{c: c, body: b.loginUsers[w%len(b.loginUsers)].loginBody}, nil
		}},
	{name: "refresh", about: "POST /api/v1/auth/refresh, each worker chaining its own rotations", needsLogin: true,
		newWorker: func(b *bench, c *conn, w int) (worker, error) {
			s, err := newSession(c, b.sessionUsers[w%len(b.sessionUsers)])
			if err != nil {
				return nil, err
			}
			return &refreshWorker{s: s}, nil
		}},
	{name: "me", about: "GET /api/v1/users/me with a bearer token", needsLogin: true,
		newWorker: func(b *bench, c *conn, w int) (worker, error) {
			s, err := newSession(c, b.sessionUsers[w%len(b.sessionUsers)])
			if err != nil {
				return nil, err
			}
			return &meWorker{s: s}, nil
		}},
	{name: "jwks", about: "GET /.well-known/jwks.json, the public signing keys",
		newWorker: func(_ *bench, c *conn, _ int) (worker, error) {
			return &jwksWorker{c: c}, nil
		}},
	{name: "mixed", about: "90% GET /users/me, 9% refresh, 1% password login", needsLogin: true,
		newWorker: func(b *bench, c *conn, w int) (worker, error) {
			s, err := newSession(c, b.sessionUsers[w%len(b.sessionUsers)])
			if err != nil {
				return nil, err
			}
			return &mixedWorker{s: s, rng: rand.New(rand.NewPCG(uint64(w), 6)),
				login: &loginWorker{c: c, body: b.loginUsers[w%len(b.loginUsers)].loginBody, honourRetryAfter: true}}, nil
		}},
}

func scenarioByName(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

// seededUser is a verified account created for the run.
type seededUser struct {
	username  string
	loginBody []byte
}

// bench is what the workers share.
type bench struct {
	prefix       string // makes this run's usernames unique
	password     string
	registered   atomic.Int64
	loginUsers   []seededUser // for the login scenario and the logins of the mixed one
	sessionUsers []seededUser // one per worker for refresh, me and mixed
}

type registerWorker struct {
	b                *bench
	c                *conn
	honourRetryAfter bool
}

func (w *registerWorker) step(ctx context.Context, rec *recorder) {
	name := fmt.Sprintf("%s-u%d", w.b.prefix, w.b.registered.Add(1))
	body, _ := json.Marshal(map[string]string{"username": name, "email": name + "@example.com", "password": w.b.password})
	start := time.Now()
	status, _, err := w.c.call(http.MethodPost, "/api/v1/users", "", "application/json", body, false)
	rec.add("register", start, status, err)
	pause(ctx, retryWait(w.honourRetryAfter, status, w.c.retryAfter, time.Now(), rec.to))
}

func (w *registerWorker) close() { w.c.close() }

type loginWorker struct {
	c                *conn
	body             []byte
	honourRetryAfter bool
}

func (w *loginWorker) step(ctx context.Context, rec *recorder) {
	start := time.Now()
	status, _, err := w.c.call(http.MethodPost, "/api/v1/auth/token", "", "application/json", w.body, false)
	rec.add("login", start, status, err)
	pause(ctx, retryWait(w.honourRetryAfter, status, w.c.retryAfter, time.Now(), rec.to))
}

// retryWait is how long a login or registration worker waits before its next request: as
// backOff says when it honours Retry-After, and not at all when it floods.
func retryWait(honour bool, status int, retryAfter time.Duration, now, windowEnd time.Time) time.Duration {
	if !honour {
		return 0
	}
	return backOff(status, retryAfter, now, windowEnd)
}

func (w *loginWorker) close() { w.c.close() }

// maxBackOff caps how long a worker honours a Retry-After.
const maxBackOff = 5 * time.Second

// backOff is how long a worker waits before its next request after an answer of status with
// retryAfter, at now, in a window that ends at windowEnd: after a 503 or 429 with a
// Retry-After, that long, up to maxBackOff, as a well-behaved client waits. Without it a
// worker asks again at once, and a loop of fast refusals would take the CPU the run
// measures. No worker starts a request after the window, so the wait never runs past it.
func backOff(status int, retryAfter time.Duration, now, windowEnd time.Time) time.Duration {
	if status != http.StatusServiceUnavailable && status != http.StatusTooManyRequests {
		return 0
	}
	return max(min(retryAfter, maxBackOff, windowEnd.Sub(now)), 0)
}

// pause sleeps for d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// session is one worker's login: a token pair that refreshes replace.
type session struct {
	c    *conn
	user seededUser
	pair tokenPair
}

// sessionSetupLimit bounds how long a worker keeps asking for its first login while the
// server answers 503 or 429: at 64 workers logging in at once, the bcrypt pool admits what it
// can serve in time and asks the rest to come back.
const sessionSetupLimit = time.Minute

// newSession logs u in on c, honouring Retry-After like any client for up to
// sessionSetupLimit.
func newSession(c *conn, u seededUser) (*session, error) {
	deadline := time.Now().Add(sessionSetupLimit)
	for {
		p, status, err := c.login(u.loginBody)
		if err == nil && status == http.StatusOK {
			return &session{c: c, user: u, pair: p}, nil
		}
		wait := backOff(status, c.retryAfter, time.Now(), deadline)
		if err != nil || wait <= 0 {
			c.close()
			return nil, fmt.Errorf("logging in %s: status %d: %v", u.username, status, err)
		}
		time.Sleep(wait)
	}
}

// refresh rotates the pair. A 401 on a refresh token this worker has never presented
// before is a lost rotation. After a 401, an error or any other failure the chain's state
// is unknown, so the worker logs in again instead of presenting the old token twice (which
// would be reuse, and revoke the session).
func (s *session) refresh(ctx context.Context, rec *recorder) {
	start := time.Now()
	status, b, err := s.c.call(http.MethodPost, "/api/v1/auth/refresh", "", "application/json", refreshBody(s.pair.RefreshToken), true)
	if err == nil && status == http.StatusOK {
		var p tokenPair
		if json.Unmarshal(b, &p) == nil && p.RefreshToken != "" {
			rec.add("refresh", start, status, nil)
			s.pair = p
			return
		}
		err = errors.New("refresh: unexpected body")
		status = 0
	}
	rec.add("refresh", start, status, err)
	if status == http.StatusUnauthorized {
		rec.lostRotation("refresh", start)
	}
	s.relogin(ctx, rec)
}

func (s *session) relogin(ctx context.Context, rec *recorder) {
	for ctx.Err() == nil {
		start := time.Now()
		p, status, err := s.c.login(s.user.loginBody)
		rec.add("relogin", start, status, err)
		if err == nil && status == http.StatusOK {
			s.pair = p
			return
		}
		// The server is busy or failing: wait as it asks, or a little, but do not spin.
		pause(ctx, max(backOff(status, s.c.retryAfter, time.Now(), time.Now().Add(maxBackOff)), 100*time.Millisecond))
	}
}

type refreshWorker struct{ s *session }

func (w *refreshWorker) step(ctx context.Context, rec *recorder) { w.s.refresh(ctx, rec) }
func (w *refreshWorker) close()                                  { w.s.c.close() }

// jwksWorker fetches the JWKS, as a resource server does when its cached copy expires.
type jwksWorker struct{ c *conn }

func (w *jwksWorker) step(_ context.Context, rec *recorder) {
	start := time.Now()
	status, _, err := w.c.call(http.MethodGet, "/.well-known/jwks.json", "", "", nil, false)
	rec.add("jwks", start, status, err)
}

func (w *jwksWorker) close() { w.c.close() }

type meWorker struct{ s *session }

func (w *meWorker) step(_ context.Context, rec *recorder) { w.s.me(rec) }
func (w *meWorker) close()                                { w.s.c.close() }

func (s *session) me(rec *recorder) {
	start := time.Now()
	status, _, err := s.c.call(http.MethodGet, "/api/v1/users/me", s.pair.AccessToken, "", nil, false)
	rec.add("me", start, status, err)
}

// checkRevocation logs the session out and reports the status of the very next GET
// /users/me with its access token, which must be 401: the bearer check asks the database
// every time, so a revocation takes effect on the next request, on any instance.
func (w *meWorker) checkRevocation() string {
	status, _, err := w.s.c.call(http.MethodPost, "/api/v1/auth/logout", w.s.pair.AccessToken, "", nil, false)
	if err != nil || status != http.StatusOK {
		return fmt.Sprintf("logout failed: status %d, %v", status, err)
	}
	status, _, err = w.s.c.call(http.MethodGet, "/api/v1/users/me", w.s.pair.AccessToken, "", nil, false)
	switch {
	case err != nil:
		return fmt.Sprintf("the request after logout failed: %v", err)
	case status != http.StatusUnauthorized:
		return fmt.Sprintf("FAILED: the request right after logout was answered %d", status)
	}
	return "refused at once (401)"
}

type mixedWorker struct {
	s     *session
	rng   *rand.Rand
	login *loginWorker
}

func (w *mixedWorker) step(ctx context.Context, rec *recorder) {
	switch n := w.rng.IntN(100); {
	case n < 90:
		w.s.me(rec)
	case n < 99:
		w.s.refresh(ctx, rec)
	default:
		w.login.step(ctx, rec)
	}
}

func (w *mixedWorker) close() { w.s.c.close() }

// seed registers and verifies the users the scenarios need, par at a time.
func seed(ctx context.Context, t *target, b *bench, admin credentials, n, par int, logf func(string, ...any)) error {
	c := t.conn()
	adminPair, status, err := c.login(loginBody(admin.username, admin.password))
	c.close()
	if err != nil || status != http.StatusOK {
		return fmt.Errorf("logging in the admin %q: status %d: %v", admin.username, status, err)
	}
	began := time.Now()
	users := make([]seededUser, 2*n)
	errs := make([]error, len(users))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range par {
		wg.Go(func() {
			c := t.conn()
			defer c.close()
			for i := int(next.Add(1) - 1); i < len(users) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				users[i], errs[i] = seedOne(c, b, adminPair.AccessToken, fmt.Sprintf("%s-s%d", b.prefix, i))
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b.loginUsers, b.sessionUsers = users[:n], users[n:]
	logf("seeded %d verified users in %v", len(users), time.Since(began).Round(time.Millisecond))
	return nil
}

func seedOne(c *conn, b *bench, adminToken, name string) (seededUser, error) {
	body, _ := json.Marshal(map[string]string{"username": name, "email": name + "@example.com", "password": b.password})
	status, resp, err := c.call(http.MethodPost, "/api/v1/users", "", "application/json", body, true)
	if err != nil || status != http.StatusCreated {
		return seededUser{}, fmt.Errorf("registering %s: status %d: %v %s", name, status, err, resp)
	}
	var u struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(resp, &u); err != nil || u.ID == "" {
		return seededUser{}, fmt.Errorf("registering %s: unexpected body", name)
	}
	status, resp, err = c.call(http.MethodPut, "/api/v1/users/"+u.ID+"/verify", adminToken, "", nil, true)
	if err != nil || status != http.StatusOK {
		return seededUser{}, fmt.Errorf("verifying %s: status %d: %v %s", name, status, err, resp)
	}
	return seededUser{username: name, loginBody: loginBody(name, b.password)}, nil
}

// statusKeys lists a status map's codes in order, with "error" for missing answers last.
func statusSummary(statuses map[int]int64, errs int64) map[string]int64 {
	out := map[string]int64{}
	for st, n := range statuses {
		out[strconv.Itoa(st)] = n
	}
	if errs > 0 {
		out["error"] = errs
	}
	return out
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
