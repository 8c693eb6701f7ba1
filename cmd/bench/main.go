// Command bench is Authly's load benchmark. It runs each scenario (register, login,
// refresh, GET /users/me, a mix, and floods of registrations and logins from clients that
// ignore Retry-After) for a fixed time at each concurrency against a server on this
// machine, and reports throughput, latency, status counts, the server's CPU, memory and log
// output, together with the bcrypt ceiling of this machine. See docs/benchmarks.md.
//
// Without -url (or AUTHLY_BENCH_URL) it starts its own server on the embedded default
// database in a fresh data directory, and removes it afterwards. Every run is bounded in
// time, and traffic only ever goes to a loopback address.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		targetURL   = fs.String("url", getenv("AUTHLY_BENCH_URL"), "an Authly server on this machine (default $AUTHLY_BENCH_URL; empty: start one)")
		duration    = fs.Duration("duration", 10*time.Second, "measured time per scenario and concurrency")
		warmup      = fs.Duration("warmup", 2*time.Second, "unmeasured time before each measurement")
		timeout     = fs.Duration("timeout", 10*time.Second, "per-request timeout")
		concList    = fs.String("concurrency", "16,64", "comma-separated concurrencies")
		scenList    = fs.String("scenarios", "register,register-flood,login,login-flood,refresh,me,mixed", "comma-separated scenarios")
		jsonPath    = fs.String("json", "", "also write the results as JSON to this file")
		bcryptCost  = fs.Int("bcrypt-cost", 10, "bcrypt cost: the local server's, and the floor's")
		hashName    = fs.String("password-hash", "bcrypt", "bcrypt or argon2id: the local server's AUTHLY_PASSWORD_HASH, and the floor's (argon2id at its defaults, m=19 MiB, t=2, p=1)")
		serverBin   = fs.String("server-bin", "", "the Authly binary to start (empty: go build ./cmd/server)")
		serverPID   = fs.Int("server-pid", 0, "with -url: the server's pid, to read its CPU and memory from /proc")
		postgresPID = fs.Int("postgres-pid", 0, "the postmaster's pid, to read the cluster's CPU from /proc (found by itself for the local server)")
		adminUser   = fs.String("admin-user", getenv("AUTHLY_BENCH_ADMIN_USERNAME"), "with -url: an admin, to verify the seeded users")
		adminPass   = fs.String("admin-password", getenv("AUTHLY_BENCH_ADMIN_PASSWORD"), "with -url: the admin's password")
		keep        = fs.Bool("keep", false, "keep the local server's data directory and log")
		maxRuntime  = fs.Duration("max-runtime", 30*time.Minute, "hard limit on the whole run")
		skipFloor   = fs.Bool("no-floor", false, "skip the bcrypt floor measurement")
		algList     = fs.String("jwt-algorithm", "", "comma-separated JWT_ALGORITHM values, such as HS256,ES256: the local server is started once per value\nand every scenario runs against each, for a side-by-side comparison (empty: the server's default)")
		extraServer listFlag
	)
	fs.Var(&extraServer, "server-env", "KEY=VALUE for the local server's environment (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	hasher, err := floorHasher(*hashName, *bcryptCost)
	if err != nil {
		return fmt.Errorf("-password-hash: %w", err)
	}
	if *hashName != "bcrypt" {
		extraServer = append(extraServer, "AUTHLY_PASSWORD_HASH="+*hashName)
	}
	concs, err := parseInts(*concList)
	if err != nil {
		return fmt.Errorf("-concurrency: %w", err)
	}
	var scens []scenario
	for name := range strings.SplitSeq(*scenList, ",") {
		sc, ok := scenarioByName(strings.TrimSpace(name))
		if !ok {
			return fmt.Errorf("-scenarios: unknown scenario %q", name)
		}
		scens = append(scens, sc)
	}
	if *duration <= 0 || *duration > 10*time.Minute || *warmup < 0 {
		return errors.New("-duration must be in (0, 10m] and -warmup at least 0")
	}
	algs := []string{""}
	if *algList != "" {
		if *targetURL != "" {
			return errors.New("-jwt-algorithm starts local servers; it cannot be used with -url")
		}
		algs = nil
		for a := range strings.SplitSeq(*algList, ",") {
			a = strings.TrimSpace(a)
			if !slices.Contains([]string{"HS256", "HS384", "HS512", "ES256", "EdDSA", "RS256"}, a) {
				return fmt.Errorf("-jwt-algorithm: %q is not one of HS256, HS384, HS512, ES256, EdDSA, RS256", a)
			}
			algs = append(algs, a)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *maxRuntime)
	defer cancel()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}

	rep := &report{Started: time.Now().UTC(), Machine: readMachineInfo(), Settings: settings{
		Concurrency: concs, WarmupSeconds: warmup.Seconds(), DurationSeconds: duration.Seconds(),
		TimeoutSeconds: timeout.Seconds(), BcryptCost: *bcryptCost, PasswordHash: *hashName, ServerEnv: extraServer,
		JWTAlgorithms: slices.DeleteFunc(slices.Clone(algs), func(a string) bool { return a == "" }),
	}}
	for _, sc := range scens {
		rep.Settings.Scenarios = append(rep.Settings.Scenarios, sc.name)
	}
	maxConc := 0
	for _, c := range concs {
		maxConc = max(maxConc, c)
	}

	stopServer := func() {}
	defer func() { stopServer() }()
	for _, alg := range algs {
		pr := probe{postgresPID: *postgresPID}
		base, admin := strings.TrimRight(*targetURL, "/"), credentials{username: *adminUser, password: *adminPass}
		var addr string
		if base == "" {
			env := extraServer
			if alg != "" {
				env = append(slices.Clone(extraServer), "JWT_ALGORITHM="+alg)
				logf("local server with JWT_ALGORITHM=%s", alg)
			}
			srv, err := startLocalServer(ctx, *serverBin, *bcryptCost, env, *keep, logf)
			if err != nil {
				return err
			}
			stopServer = func() {
				rep.ServerLog += srv.serverErrors()
				srv.stop(logf)
				stopServer = func() {}
			}
			addr, admin = strings.TrimPrefix(srv.url, "http://"), srv.admin
			pr.serverPID, pr.logPath = srv.pid(), srv.logPath
			if pid, err := srv.postmasterPID(); err == nil && *postgresPID == 0 {
				pr.postgresPID = pid
			}
			rep.Target = "local server on the embedded PostgreSQL (fresh data directory)"
			if note := "Authly CPU and peak RSS are the Authly process alone; the embedded PostgreSQL " +
				"runs as separate processes, whose CPU is the PG CPU column."; !slices.Contains(rep.Notes, note) {
				rep.Notes = append(rep.Notes, note)
			}
		} else {
			u, err := url.Parse(base)
			if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
				return fmt.Errorf("-url: want http://host:port, got %q", base)
			}
			addr = u.Host
			if u.Port() == "" {
				addr = net.JoinHostPort(u.Hostname(), "80")
			}
			if err := checkLoopback(ctx, u.Hostname()); err != nil {
				return fmt.Errorf("-url: %w", err)
			}
			pr.serverPID = *serverPID
			rep.Target = "server at " + base
		}

		b := &bench{prefix: "b" + randomHex(4), password: "bench-pw-" + randomHex(8)}
		needLogin := false
		for _, sc := range scens {
			needLogin = needLogin || sc.needsLogin
		}
		if needLogin {
			if admin.username == "" {
				return errors.New("the login, refresh, me and mixed scenarios need verified users: " +
					"give an admin with -admin-user and -admin-password, or run without -url")
			}
			seedTarget := &target{addr: addr, timeout: time.Minute}
			if err := seed(ctx, seedTarget, b, admin, maxConc, 2*runtime.NumCPU(), logf); err != nil {
				return err
			}
		}

		opts := runOptions{warmup: *warmup, duration: *duration, timeout: *timeout}
		for _, sc := range scens {
			for _, c := range concs {
				// The floor is measured right before and right after each hash-bound run, with
				// the server idle, so that it sees the machine as the run does: a hash's time
				// drifts by a few percent over a minute on a shared machine, and bracketing the
				// run averages that drift out.
				measure := sc.bcryptBound && !*skipFloor
				var before floorSample
				if measure {
					before = sampleFloor(hasher)
				}
				logf("%s at concurrency %d: %s", sc.name, c, sc.about)
				res, err := runScenario(ctx, sc, c, opts, b, addr, pr)
				if err != nil {
					return err
				}
				res.JWTAlgorithm = alg
				if measure {
					fl := floorOf(hasher, before, sampleFloor(hasher))
					res.compareWithFloor(fl)
					logf("%s floor around the run: one hash (%s) takes %.1f ms; ceiling %.1f/s on %d CPUs",
						fl.Algorithm, fl.Parameters, fl.HashMillis, fl.CeilingPerSecond, fl.CPUs)
				}
				p99 := "–"
				if res.Latency != nil {
					p99 = strconv.FormatFloat(res.Latency.P99, 'f', 2, 64) + " ms"
				}
				logf("  %.1f req/s, p99 %s, %s", res.PerSecond, p99, statusText(res.Statuses))
				rep.Results = append(rep.Results, res)
			}
		}
		stopServer()
	}

	if rep.ServerLog > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the server logged %d error lines (each 5xx is logged once)", rep.ServerLog))
	}
	writeTable(stdout, rep)
	if *jsonPath != "" {
		if err := writeJSON(*jsonPath, rep); err != nil {
			return err
		}
		logf("wrote %s", *jsonPath)
	}
	return nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("%q is not a number from 1 to 1024", part)
		}
		out = append(out, n)
	}
	return out, nil
}
