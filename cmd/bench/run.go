package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"time"
)

// probe reads the CPU and memory of the processes under test from /proc, and the size of
// the server's log. A zero pid means that process is not observed, an empty logPath that the
// log is not.
type probe struct {
	serverPID   int
	postgresPID int
	logPath     string // the local server's standard output and error
}

type snapshot struct {
	at       time.Time
	server   time.Duration
	postgres time.Duration
	tool     time.Duration
	machine  machineCPU
	logSize  int64 // bytes in the server's log
}

func (p probe) snap() snapshot {
	s := snapshot{at: time.Now()}
	if p.logPath != "" {
		if fi, err := os.Stat(p.logPath); err == nil {
			s.logSize = fi.Size()
		}
	}
	if p.serverPID > 0 {
		s.server, _ = procCPU(p.serverPID, false)
	}
	if p.postgresPID > 0 {
		s.postgres, _ = treeCPU(p.postgresPID)
	}
	s.tool, _ = procCPU(os.Getpid(), false)
	s.machine, _ = readMachineCPU()
	return s
}

// runOptions are the settings shared by every run.
type runOptions struct {
	warmup   time.Duration
	duration time.Duration
	timeout  time.Duration
}

// runScenario runs one scenario at one concurrency: the workers log in if they need to,
// run for the warm-up, then for the measured duration, and the outcomes of the requests that
// started inside the measured window are reported.
func runScenario(ctx context.Context, sc scenario, conc int, opts runOptions, b *bench, addr string, pr probe) (result, error) {
	t := &target{addr: addr, timeout: opts.timeout}
	workers := make([]worker, conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { workers[i], errs[i] = sc.newWorker(b, t.conn(), i) })
	}
	wg.Wait()
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.close()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return result{}, fmt.Errorf("%s: preparing workers: %w", sc.name, err)
	}

	start := time.Now()
	from := start.Add(opts.warmup)
	to := from.Add(opts.duration)
	// Requests in flight at the end may finish, up to their own timeout; nothing runs longer.
	runCtx, cancel := context.WithDeadline(ctx, to.Add(opts.timeout+5*time.Second))
	defer cancel()

	peak := newRSSWatch(pr.serverPID)
	recs := make([]*recorder, conc)
	for i, w := range workers {
		recs[i] = newRecorder(from, to)
		wg.Go(func() {
			for runCtx.Err() == nil && time.Now().Before(to) {
				w.step(runCtx, recs[i])
			}
		})
	}
	var before, after snapshot
	sleepUntil(runCtx, from)
	before = pr.snap()
	sleepUntil(runCtx, to)
	after = pr.snap()
	wg.Wait()
	peakKiB := peak.stop()
	if err := ctx.Err(); err != nil {
		return result{}, err
	}

	all := newRecorder(from, to)
	for _, r := range recs {
		all.merge(r)
	}
	res := summarize(sc, conc, opts.duration, all, before, after, pr, peakKiB)
	if pr.logPath != "" {
		res.countServerLog(pr.logPath, before.logSize, after.logSize, opts.duration)
	}
	if w, ok := workers[0].(interface{ checkRevocation() string }); ok {
		res.Revocation = w.checkRevocation()
	}
	return res, nil
}

func sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(t)):
	}
}

// rssWatch tracks a process's peak resident set: the kernel's VmHWM, reset at the start.
// Where the kernel cannot reset it, the highest VmRSS sampled every 20ms stands in; the
// sampling is otherwise skipped, since it costs the machine CPU the scenarios would miss.
type rssWatch struct {
	pid   int
	reset bool
	done  chan struct{}
	max   chan int64
}

func newRSSWatch(pid int) *rssWatch {
	w := &rssWatch{pid: pid, done: make(chan struct{}), max: make(chan int64, 1)}
	if pid <= 0 {
		close(w.max)
		return w
	}
	if w.reset = resetPeakRSS(pid); w.reset {
		go func() { <-w.done; w.max <- 0 }()
		return w
	}
	go func() {
		var peak int64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if kb, err := memKB(pid, "VmRSS"); err == nil {
				peak = max(peak, kb)
			}
			select {
			case <-w.done:
				w.max <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// stop returns the peak in KiB, 0 when the process is not observed.
func (w *rssWatch) stop() int64 {
	close(w.done)
	peak := <-w.max
	if w.pid > 0 && w.reset {
		if hwm, err := memKB(w.pid, "VmHWM"); err == nil {
			peak = max(peak, hwm)
		}
	}
	return peak
}

// latency is a distribution in milliseconds.
type latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func latencyOf(h *histogram) *latency {
	if h.n == 0 {
		return nil
	}
	return &latency{P50: round3(h.quantile(0.5)), P90: round3(h.quantile(0.9)), P99: round3(h.quantile(0.99)),
		Max: round3(float64(h.max) / 1000), Mean: round3(h.meanMillis())}
}

// opResult is one operation within a scenario (the mixed one has three).
type opResult struct {
	Op            string           `json:"op"`
	Requests      int64            `json:"requests"`
	PerSecond     float64          `json:"requests_per_second"`
	OKPerSecond   float64          `json:"ok_per_second"`
	Latency       *latency         `json:"latency_ok,omitempty"`
	Rejected      *latency         `json:"latency_rejected,omitempty"`
	Statuses      map[string]int64 `json:"statuses"`
	LostRotations int64            `json:"lost_rotations"`
}

// result is one scenario at one concurrency.
type result struct {
	Scenario string `json:"scenario"`
	// JWTAlgorithm is the local server's JWT_ALGORITHM when -jwt-algorithm chose it.
	JWTAlgorithm    string  `json:"jwt_algorithm,omitempty"`
	Concurrency     int     `json:"concurrency"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Requests started inside the window: the population of Latency, Rejected and Statuses.
	Requests int64 `json:"requests"`
	// Completed requests per second, and 2xx answers per second, each request counted by
	// the share of its duration inside the window.
	PerSecond   float64  `json:"requests_per_second"`
	OKPerSecond float64  `json:"ok_per_second"`
	Latency     *latency `json:"latency_ok,omitempty"`
	// Rejected is the latency of every non-2xx answer, such as a 503 from a full bcrypt
	// queue; those answers are counted in Statuses, not in Latency.
	Rejected      *latency         `json:"latency_rejected,omitempty"`
	Statuses      map[string]int64 `json:"statuses"`
	LostRotations int64            `json:"lost_rotations"`
	Ops           []opResult       `json:"ops"`

	// CPU-seconds per 1,000 requests of the Authly process, of the PostgreSQL cluster and of
	// this load tool; nil when not observed.
	ServerCPUPer1k   *float64 `json:"server_cpu_seconds_per_1k,omitempty"`
	PostgresCPUPer1k *float64 `json:"postgres_cpu_seconds_per_1k,omitempty"`
	ToolCPUPer1k     float64  `json:"load_tool_cpu_seconds_per_1k"`
	// Machine-wide use of all CPUs during the window, and the part of it no observed
	// process accounts for (other work on the machine, kernel threads).
	MachineBusyPercent float64 `json:"machine_busy_percent"`
	OtherCPUPercent    float64 `json:"other_cpu_percent"`
	ServerPeakRSSMiB   float64 `json:"server_peak_rss_mib,omitempty"`
	// Revocation is what happened to the first request after one worker logged out at the
	// end of the run (GET /users/me only).
	Revocation string `json:"revocation_check,omitempty"`
	// Floor is the bcrypt floor measured right before and right after this run, for the bcrypt-bound
	// scenarios, and BcryptCeilingPct the 2xx rate as a percentage of its ceiling.
	Floor            *floor  `json:"bcrypt_floor,omitempty"`
	BcryptCeilingPct float64 `json:"bcrypt_ceiling_percent,omitempty"`
	// RefusedPerSecond is the 429 and 503 answers to requests started in the window, per
	// second of it.
	RefusedPerSecond float64 `json:"refused_per_second"`
	// What the local server wrote to its log (standard output and error) during the window,
	// per second; nil when the log is not observed.
	ServerLogLinesPerSecond *float64 `json:"server_log_lines_per_second,omitempty"`
	ServerLogBytesPerSecond *float64 `json:"server_log_bytes_per_second,omitempty"`
}

// countServerLog records how many lines and bytes the server's log grew by between the
// window's edges, from and to being its sizes there.
func (r *result) countServerLog(path string, from, to int64, d time.Duration) {
	if to < from {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	grown := make([]byte, to-from)
	if _, err := f.ReadAt(grown, from); err != nil {
		return
	}
	lines := round1(float64(bytes.Count(grown, []byte("\n"))) / d.Seconds())
	perSecond := round1(float64(len(grown)) / d.Seconds())
	r.ServerLogLinesPerSecond, r.ServerLogBytesPerSecond = &lines, &perSecond
}

// label names the run in the table: the scenario, and the algorithm when one was chosen.
func (r *result) label() string {
	if r.JWTAlgorithm == "" {
		return r.Scenario
	}
	return r.Scenario + " (" + r.JWTAlgorithm + ")"
}

func summarize(sc scenario, conc int, d time.Duration, rec *recorder, before, after snapshot, pr probe, peakKiB int64) result {
	secs := d.Seconds()
	r := result{Scenario: sc.name, Concurrency: conc, DurationSeconds: secs, Statuses: map[string]int64{}}
	var okAll, rejAll histogram
	var done, okDone float64
	names := make([]string, 0, len(rec.ops))
	for name := range rec.ops {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return opOrder(names[i]) < opOrder(names[j]) })
	for _, name := range names {
		s := rec.ops[name]
		n := int64(s.ok.n+s.rejected.n) + s.errors
		op := opResult{Op: name, Requests: n, PerSecond: round1(s.done / secs), OKPerSecond: round1(s.okDone / secs),
			Latency: latencyOf(&s.ok), Rejected: latencyOf(&s.rejected), Statuses: statusSummary(s.statuses, s.errors), LostRotations: s.lost}
		r.Ops = append(r.Ops, op)
		r.Requests += n
		r.LostRotations += s.lost
		for k, v := range op.Statuses {
			r.Statuses[k] += v
		}
		okAll.merge(&s.ok)
		rejAll.merge(&s.rejected)
		done += s.done
		okDone += s.okDone
	}
	r.PerSecond = round1(done / secs)
	r.OKPerSecond = round1(okDone / secs)
	r.RefusedPerSecond = round1(float64(r.Statuses["429"]+r.Statuses["503"]) / secs)
	r.Latency, r.Rejected = latencyOf(&okAll), latencyOf(&rejAll)
	// CPU is read at the window's edges, so it is divided by the work done inside it.
	per1k := func(cpu time.Duration) float64 {
		if done == 0 {
			return 0
		}
		return round4(cpu.Seconds() / done * 1000)
	}
	if pr.serverPID > 0 {
		v := per1k(after.server - before.server)
		r.ServerCPUPer1k = &v
	}
	if pr.postgresPID > 0 {
		v := per1k(after.postgres - before.postgres)
		r.PostgresCPUPer1k = &v
	}
	r.ToolCPUPer1k = per1k(after.tool - before.tool)
	if total := after.machine.total - before.machine.total; total > 0 {
		busy := after.machine.busy - before.machine.busy
		observed := (after.server - before.server) + (after.postgres - before.postgres) + (after.tool - before.tool)
		r.MachineBusyPercent = round1(100 * busy.Seconds() / total.Seconds())
		r.OtherCPUPercent = round1(max(0, 100*(busy-observed).Seconds()/total.Seconds()))
	}
	if peakKiB > 0 {
		r.ServerPeakRSSMiB = round1(float64(peakKiB) / 1024)
	}
	return r
}

// bcryptBound reports whether the run is of a scenario that costs one hash per success.
func (r *result) bcryptBound() bool {
	sc, ok := scenarioByName(r.Scenario)
	return ok && sc.bcryptBound
}

// compareWithFloor records the bcrypt floor measured around the run and the run's accepted
// throughput as a share of its ceiling.
func (r *result) compareWithFloor(f floor) {
	if f.CeilingPerSecond <= 0 {
		return
	}
	r.Floor = &f
	r.BcryptCeilingPct = round1(100 * r.OKPerSecond / f.CeilingPerSecond)
}

func opOrder(name string) int {
	for i, n := range []string{"me", "refresh", "login", "register", "relogin", "jwks"} {
		if n == name {
			return i
		}
	}
	return 99
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
func round4(v float64) float64 { return math.Round(v*10000) / 10000 }
