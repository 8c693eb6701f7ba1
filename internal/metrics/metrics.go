// Package metrics defines Authly's Prometheus metrics. Every recording method is safe on a nil
// *Metrics, so code paths need no checks when metrics are off.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "authly"

// Metrics holds Authly's collectors in their own registry.
type Metrics struct {
	reg           *prometheus.Registry
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	logins        *prometheus.CounterVec
	lockouts      prometheus.Counter
	rateLimited   *prometheus.CounterVec
	refreshReuse  prometheus.Counter
	tokensIssued  *prometheus.CounterVec
	tokensRevoked *prometheus.CounterVec
	hashWait      prometheus.Histogram
	hashRejected  prometheus.Counter
	refusals      *prometheus.CounterVec
	refusalsHeld  prometheus.Gauge
	cleanupRuns   prometheus.Counter
	cleanupRows   *prometheus.CounterVec
	mailMessages  *prometheus.CounterVec // mail.go
	// passwordRehashes: account.go
	passwordRehashes *prometheus.CounterVec
}

// New creates the metrics with the Go runtime and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) prometheus.Collector { reg.MustRegister(c); return c }
	m := &Metrics{
		reg: reg,
		httpRequests: f(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests by route template, method and status.",
		}, []string{"route", "method", "status"})).(*prometheus.CounterVec),
		httpDuration: f(prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "HTTP request latency by route template and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"})).(*prometheus.HistogramVec),
		logins: f(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "logins_total",
			Help: "Password logins by outcome.",
		}, []string{"outcome"})).(*prometheus.CounterVec),
		lockouts: f(prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "account_lockouts_total",
			Help: "Accounts locked after repeated failed logins.",
		})).(prometheus.Counter),
		rateLimited: f(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rate_limited_total",
			Help: "Requests refused by a rate limit, by limit.",
		}, []string{"limit"})).(*prometheus.CounterVec),
		refreshReuse: f(prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "refresh_token_reuse_total",
			Help: "Rotated-away refresh tokens presented again; each revokes its session.",
		})).(prometheus.Counter),
		tokensIssued: f(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tokens_issued_total",
			Help: "Tokens issued, by type.",
		}, []string{"type"})).(*prometheus.CounterVec),
		tokensRevoked: f(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tokens_revoked_total",
			Help: "Tokens invalidated before expiry, by reason.",
		}, []string{"reason"})).(*prometheus.CounterVec),
		hashWait: f(prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "bcrypt_wait_seconds",
			Help:    "Time spent waiting for a bcrypt worker.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2, 5},
		})).(prometheus.Histogram),
		hashRejected: f(prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "bcrypt_rejected_total",
			Help: "Requests answered 503 server_busy because the bcrypt queue was full.",
		})).(prometheus.Counter),
		refusals: f(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "refusals_total",
			Help: "Requests refused to protect the server or its users (server_busy, rate_limited, account_locked), by code and by whether they were held before their answer.",
		}, []string{"code", "held"})).(*prometheus.CounterVec),
		refusalsHeld: f(prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "refusals_held",
			Help: "Refused requests being held before their answer now.",
		})).(prometheus.Gauge),
		cleanupRuns: f(prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "cleanup_runs_total",
			Help: "Runs of the expired token and session cleanup.",
		})).(prometheus.Counter),
		cleanupRows: f(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "cleanup_deleted_rows_total",
			Help: "Rows deleted by the cleanup, by table.",
		}, []string{"table"})).(*prometheus.CounterVec),
	}
	m.mailMessages = newMailMessages(reg)
	m.passwordRehashes = newPasswordRehashes(reg)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry exposes the registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

var standardMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// ObserveHTTP records one finished request. route is the route template, never the raw path,
// so the label set stays bounded.
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if !standardMethods[method] {
		method = "OTHER" // clients choose the method, so it must not grow the label set
	}
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// Login records a password login's outcome: success, invalid_credentials, inactive,
// unverified, locked, rate_limited or busy.
func (m *Metrics) Login(outcome string) {
	if m != nil {
		m.logins.WithLabelValues(outcome).Inc()
	}
}

// Lockout records an account being locked.
func (m *Metrics) Lockout() {
	if m != nil {
		m.lockouts.Inc()
	}
}

// RateLimited records a request refused by the named limit.
func (m *Metrics) RateLimited(limit string) {
	if m != nil {
		m.rateLimited.WithLabelValues(limit).Inc()
	}
}

// RefreshReuse records a detected refresh-token reuse.
func (m *Metrics) RefreshReuse() {
	if m != nil {
		m.refreshReuse.Inc()
	}
}

// TokensIssued records n tokens of a type (access or refresh) issued.
func (m *Metrics) TokensIssued(tokenType string, n int) {
	if m != nil && n > 0 {
		m.tokensIssued.WithLabelValues(tokenType).Add(float64(n))
	}
}

// TokensRevoked records n tokens invalidated for a reason (rotation, logout, reuse,
// session_revoked, user_changed, forced_logout).
func (m *Metrics) TokensRevoked(reason string, n int64) {
	if m != nil && n > 0 {
		m.tokensRevoked.WithLabelValues(reason).Add(float64(n))
	}
}

// HashWait records how long a caller waited for a bcrypt worker.
func (m *Metrics) HashWait(d time.Duration) {
	if m != nil {
		m.hashWait.Observe(d.Seconds())
	}
}

// HashRejected records a request refused because the bcrypt queue was full.
func (m *Metrics) HashRejected() {
	if m != nil {
		m.hashRejected.Inc()
	}
}

// Refused records a request refused to protect the server or its users, by its problem
// code (server_busy, rate_limited, account_locked), and whether it was held before its
// answer.
func (m *Metrics) Refused(code string, held bool) {
	if m != nil {
		m.refusals.WithLabelValues(code, strconv.FormatBool(held)).Inc()
	}
}

// RefusalsHeld adds delta to the refused requests being held now.
func (m *Metrics) RefusalsHeld(delta int) {
	if m != nil {
		m.refusalsHeld.Add(float64(delta))
	}
}

// Cleanup records one cleanup run and the rows it deleted per table.
func (m *Metrics) Cleanup(deleted map[string]int64) {
	if m == nil {
		return
	}
	m.cleanupRuns.Inc()
	for table, n := range deleted {
		m.cleanupRows.WithLabelValues(table).Add(float64(n))
	}
}

// WatchHashQueue exports the bcrypt queue depth through fn, read at scrape time.
func (m *Metrics) WatchHashQueue(waiting, busy func() float64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "bcrypt_queue_depth",
			Help: "Callers waiting for a bcrypt worker."}, waiting),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "bcrypt_busy_workers",
			Help: "bcrypt workers running now."}, busy),
	)
}

// WatchPool exports the pgx pool's statistics, read at scrape time.
func (m *Metrics) WatchPool(pool *pgxpool.Pool) {
	if m != nil {
		m.reg.MustRegister(&poolCollector{pool: pool})
	}
}

var (
	poolDescs = map[string]*prometheus.Desc{}
	poolNames = []struct{ name, help string }{
		{"db_pool_total_conns", "Connections in the pool."},
		{"db_pool_acquired_conns", "Connections in use."},
		{"db_pool_idle_conns", "Idle connections."},
		{"db_pool_max_conns", "The pool's maximum size."},
		{"db_pool_acquires_total", "Successful acquires."},
		{"db_pool_empty_acquires_total", "Acquires that had to wait for a connection."},
		{"db_pool_canceled_acquires_total", "Acquires canceled by their context."},
		{"db_pool_acquire_seconds_total", "Total time spent acquiring connections."},
	}
)

func init() {
	for _, n := range poolNames {
		poolDescs[n.name] = prometheus.NewDesc(namespace+"_"+n.name, n.help, nil, nil)
	}
}

type poolCollector struct{ pool *pgxpool.Pool }

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range poolDescs {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(poolDescs[name], prometheus.GaugeValue, v)
	}
	counter := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(poolDescs[name], prometheus.CounterValue, v)
	}
	gauge("db_pool_total_conns", float64(s.TotalConns()))
	gauge("db_pool_acquired_conns", float64(s.AcquiredConns()))
	gauge("db_pool_idle_conns", float64(s.IdleConns()))
	gauge("db_pool_max_conns", float64(s.MaxConns()))
	counter("db_pool_acquires_total", float64(s.AcquireCount()))
	counter("db_pool_empty_acquires_total", float64(s.EmptyAcquireCount()))
	counter("db_pool_canceled_acquires_total", float64(s.CanceledAcquireCount()))
	counter("db_pool_acquire_seconds_total", s.AcquireDuration().Seconds())
}
