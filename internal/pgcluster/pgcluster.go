// Package pgcluster runs a private PostgreSQL cluster from the server binaries
// installed on the machine.
//
// It is Authly's embedded default when no DATABASE_URL is given, and the test
// harness's throwaway server. The cluster listens only on 127.0.0.1, trusts
// every local connection, and is driven through initdb and pg_ctl, so any
// PostgreSQL release with those tools works.
//
// Several processes may use one data directory at once, such as a server and
// an operator's one-off command: the first starts the cluster, the others use
// it as it runs, and the last to leave stops it (see owner.go). Only one of
// them may be the directory's server.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoBinaries means no directory holds initdb, pg_ctl and postgres together.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries (initdb, pg_ctl, postgres) found: " +
	"install the PostgreSQL server package (e.g. `apt-get install postgresql`) " +
	"or set DATABASE_URL to an existing database")

// DefaultDatabase is the database Start creates for Authly.
const DefaultDatabase = "authly"

const (
	superuser = "postgres"
	// logFileName is kept inside the data directory so a cluster is one
	// directory to inspect, move or delete.
	logFileName = "postgres.log"
	// maxLogSize bounds postgres.log across restarts of a long-lived cluster.
	maxLogSize = 16 << 20
	// portAttempts covers the race between closing the probe listener and the
	// postmaster binding the same port.
	portAttempts = 3
	pgctlTimeout = 60 * time.Second
)

// defaultSearchPatterns lists where distributions install the server binaries
// outside PATH (Debian and Ubuntu keep them per major version).
var defaultSearchPatterns = []string{"/usr/lib/postgresql/*/bin"}

// Options configures Start.
type Options struct {
	// DataDir holds the cluster. It is created if absent and reused if it
	// already holds one.
	DataDir string
	// Logger receives progress and timings. It may be nil.
	Logger *slog.Logger
	// Ephemeral trades crash safety for speed (fsync, synchronous_commit and
	// full_page_writes off). Only for clusters whose data may be lost, as in
	// tests.
	Ephemeral bool
	// BinDir holds initdb, pg_ctl and postgres. Empty means FindBinDir.
	BinDir string
}

// Cluster is a PostgreSQL cluster in a data directory, served on one
// loopback port for the Cluster's lifetime.
type Cluster struct {
	dataDir   string
	binDir    string
	logger    *slog.Logger
	ephemeral bool
	// runAs is the account the server runs under, nil for the current one.
	// initdb and postgres refuse to run as root.
	runAs *syscall.Credential
	port  int
	// cmdline names this process in the owner files, for other processes'
	// messages.
	cmdline string

	mu sync.Mutex // serialises starts and stops
	// use holds a shared lock on the owner file while this process uses the
	// cluster; serving holds the server file's exclusive lock while this
	// process is the directory's server. Both are nil when released.
	use     *os.File
	serving *os.File
}

// Start creates the cluster on first use, or reuses an existing one, and
// waits until it accepts connections with an "authly" database.
//
// When another live process already uses the cluster, Start uses it as it
// runs, on its port, and leaves it running at Stop. Otherwise it starts the
// server on a free loopback port; a server left running by a process that
// has exited is stopped first, so that this run starts it with its own
// settings. It returns ErrNoBinaries (wrapped) when PostgreSQL is not
// installed.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := newCluster(opts)
	if err != nil {
		return nil, err
	}
	if err := c.makeDataDir(); err != nil {
		return nil, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	unlock, err := lockDataDir(ctx, c.dataDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := c.initdb(ctx); err != nil {
		return nil, err
	}
	use, err := c.openOwnerFile()
	if err != nil {
		return nil, err
	}
	began := time.Now()
	alone, err := tryLock(use, syscall.LOCK_EX)
	if err == nil {
		if alone {
			err = c.startOwned(ctx, use)
		} else {
			err = c.join(ctx, use)
		}
	}
	if err == nil {
		// Shared from now on, so that others may join; the data directory's
		// lock keeps this step from racing with them.
		err = lock(use, syscall.LOCK_SH)
	}
	if err != nil {
		use.Close()
		return nil, err
	}
	c.use = use
	c.logger.Info("postgres ready", "port", c.port, "data_dir", c.dataDir, "shared", !alone,
		"took", time.Since(began).Round(time.Millisecond))
	return c, nil
}

// startOwned starts the server for a cluster no live process uses. The
// caller holds the data directory's lock and use exclusively.
func (c *Cluster) startOwned(ctx context.Context, use *os.File) error {
	if err := c.stopLeftover(ctx, "fast", readOwner(use)); err != nil {
		return err
	}
	var err error
	for attempt := 1; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			return err
		}
		err = c.start(ctx)
		if err == nil || attempt == portAttempts || !errors.Is(err, errPortInUse) {
			break
		}
		c.logger.Debug("postgres port taken, retrying", "port", c.port)
	}
	if err != nil {
		return err
	}
	if err := c.ensureDatabase(ctx, DefaultDatabase); err != nil {
		return errors.Join(err, c.stop(ctx, "fast"))
	}
	return c.recordStart(use)
}

// StopOrphan stops, without a checkpoint, a server still running in dataDir
// whose owner died without calling Stop, such as a test binary killed by a
// timeout. It does nothing when no server runs there, and leaves alone a
// server that a live process still uses.
func StopOrphan(ctx context.Context, dataDir string) error {
	c, err := newCluster(Options{DataDir: dataDir})
	if err != nil {
		return err
	}
	unlock, err := lockDataDir(ctx, c.dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	probe, err := c.openOwnerFile()
	if err != nil {
		return err
	}
	defer probe.Close()
	alone, err := tryLock(probe, syscall.LOCK_EX)
	if err != nil || !alone {
		return err
	}
	return c.stopLeftover(ctx, "immediate", readOwner(probe))
}

// URL returns a connection string for dbname as the superuser.
func (c *Cluster) URL(dbname string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, c.port, url.PathEscape(dbname))
}

// Port returns the loopback TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// DataDir returns the directory holding the cluster and its postgres.log.
func (c *Cluster) DataDir() string { return c.dataDir }

// BinDir returns the directory holding the server binaries, where the
// client tools of the same release (pg_dump, psql) are installed too.
func (c *Cluster) BinDir() string { return c.binDir }

// Stop ends this process's use of the cluster. When no other live process
// uses it, the server shuts down in fast mode: open sessions are
// disconnected and their transactions rolled back. Otherwise it keeps
// running for them, and the last of them stops it. Stop also gives up the
// server claim (ClaimServer). Stopping a stopped server is not an error, and
// StartServer can start it again.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	unlock, err := lockDataDir(ctx, c.dataDir)
	if errors.Is(err, os.ErrNotExist) {
		c.release()
		return nil // no directory, no server
	}
	if err != nil {
		return err
	}
	defer unlock()
	c.release()

	probe, err := c.openOwnerFile()
	if err != nil {
		return err
	}
	defer probe.Close()
	alone, err := tryLock(probe, syscall.LOCK_EX)
	if err != nil {
		return err
	}
	if !alone {
		c.logger.Info("leaving postgres running for the other processes using it", "data_dir", c.dataDir)
		return nil
	}
	if err := c.stop(ctx, "fast"); err != nil {
		return err
	}
	return clearRecord(probe)
}

// StartServer starts a stopped server again on the same port, so URLs handed
// out earlier stay valid, and resumes this process's use of the cluster.
// Starting a running server is not an error.
func (c *Cluster) StartServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	unlock, err := lockDataDir(ctx, c.dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	if c.use == nil {
		use, err := c.openOwnerFile()
		if err != nil {
			return err
		}
		// Exclusive holders hold the data directory's lock, which is ours.
		if err := lock(use, syscall.LOCK_SH); err != nil {
			use.Close()
			return err
		}
		c.use = use
	}
	if c.running(ctx) {
		return nil
	}
	if err := c.start(ctx); err != nil {
		return err
	}
	return c.recordStart(c.use)
}

// Restart stops the server and starts it again on the same port, dropping
// every open connection, other processes' included.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	unlock, err := lockDataDir(ctx, c.dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := c.stop(ctx, "fast"); err != nil {
		return err
	}
	return c.start(ctx)
}

// FindBinDir returns the first directory holding initdb, pg_ctl and postgres,
// looking on PATH and then in /usr/lib/postgresql/*/bin, highest version
// first. It returns ErrNoBinaries (wrapped) when there is none.
func FindBinDir() (string, error) {
	return findBinDir(os.Getenv("PATH"), defaultSearchPatterns)
}

func findBinDir(pathList string, patterns []string) (string, error) {
	var candidates []string
	for _, dir := range filepath.SplitList(pathList) {
		if dir != "" {
			candidates = append(candidates, dir)
		}
	}
	for _, pattern := range patterns {
		matches, _ := filepath.Glob(pattern) // the only error is a bad pattern
		slices.SortFunc(matches, func(a, b string) int {
			return slices.Compare(versionOf(b), versionOf(a))
		})
		candidates = append(candidates, matches...)
	}
	for _, dir := range candidates {
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	searched := append([]string{"PATH"}, patterns...)
	return "", fmt.Errorf("pgcluster: searched %s: %w", strings.Join(searched, ", "), ErrNoBinaries)
}

var digits = regexp.MustCompile(`\d+`)

// versionOf extracts the numbers in a path, so ".../15/bin" sorts above
// ".../9.6/bin" where a string sort would not.
func versionOf(path string) []int {
	var version []int
	for _, d := range digits.FindAllString(path, -1) {
		n, _ := strconv.Atoi(d)
		version = append(version, n)
	}
	return version
}

func hasServerBinaries(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

func newCluster(opts Options) (*Cluster, error) {
	if opts.DataDir == "" {
		return nil, errors.New("pgcluster: Options.DataDir is empty")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	runAs, err := serverAccount()
	if err != nil {
		return nil, err
	}
	return &Cluster{dataDir: dataDir, binDir: binDir, logger: logger, ephemeral: opts.Ephemeral, runAs: runAs,
		cmdline: commandLine()}, nil
}

// serverAccount returns the credential to run the server binaries with: the
// "postgres" system user when we are root, because initdb and postgres refuse
// to run as root; nil otherwise.
func serverAccount() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: PostgreSQL refuses to run as root and there is no \"postgres\" system user to run it as "+
			"(create one, e.g. `useradd --system postgres`, or run as an unprivileged user): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: postgres gid %q: %w", u.Gid, err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	groups, _ := u.GroupIds() // best effort: supplementary groups are not needed to run
	for _, g := range groups {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			cred.Groups = append(cred.Groups, uint32(n))
		}
	}
	return cred, nil
}

// makeDataDir creates the data directory and checks that the server account
// can reach it.
func (c *Cluster) makeDataDir() error {
	// Parents get 0755 so that the server account can reach its data
	// directory when we create them as root.
	if err := os.MkdirAll(filepath.Dir(c.dataDir), 0o755); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if err := os.Mkdir(c.dataDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if c.runAs != nil {
		return reachable(c.dataDir, c.runAs)
	}
	return nil
}

// initdb hands the data directory to the server account and runs initdb,
// unless the directory already holds a cluster. The caller holds the data
// directory's lock.
func (c *Cluster) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err == nil {
		c.logger.Debug("reusing postgres cluster", "data_dir", c.dataDir)
		return nil
	}
	if c.runAs != nil {
		if err := os.Chown(c.dataDir, int(c.runAs.Uid), int(c.runAs.Gid)); err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
	}

	began := time.Now()
	args := []string{"-D", c.dataDir, "-U", superuser, "--auth=trust", "--encoding=UTF8", "--locale=C"}
	if c.ephemeral {
		args = append(args, "--no-sync") // a lost ephemeral cluster is simply recreated
	}
	out, err := c.command(ctx, "initdb", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgcluster: initdb in %s: %w\n%s", c.dataDir, err, tail(out))
	}
	c.logger.Info("postgres cluster created", "data_dir", c.dataDir, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// reachable reports the first ancestor of dir the server account cannot
// enter, which would otherwise surface as a bare "Permission denied" from
// initdb or postgres.
func reachable(dir string, cred *syscall.Credential) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if ok && !canEnter(st, cred) {
			return fmt.Errorf("pgcluster: data directory %s is not reachable by the postgres user (uid %d), "+
				"which runs the server because PostgreSQL refuses to run as root: %s has mode %v and owner uid %d; "+
				"make it traversable (chmod o+x %s) or choose a data directory outside it",
				dir, cred.Uid, d, info.Mode().Perm(), st.Uid, d)
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}

func canEnter(st *syscall.Stat_t, cred *syscall.Credential) bool {
	switch {
	case st.Uid == cred.Uid:
		return st.Mode&0o100 != 0
	case st.Gid == cred.Gid || slices.Contains(cred.Groups, st.Gid):
		return st.Mode&0o010 != 0
	default:
		return st.Mode&0o001 != 0
	}
}

var errPortInUse = errors.New("port in use")

// start runs the postmaster on c.port and waits until it is ready. The caller
// holds c.mu.
func (c *Cluster) start(ctx context.Context) error {
	logPath := filepath.Join(c.dataDir, logFileName)
	rotateLog(logPath)
	logStart := fileSize(logPath)

	// pg_ctl hands -o to /bin/sh, so '' is an empty value: no Unix socket,
	// whose path length limit and directory permissions are not worth the
	// trouble when TCP on loopback is all Authly uses.
	settings := []string{
		"-p " + strconv.Itoa(c.port),
		"-c listen_addresses=127.0.0.1",
		"-c unix_socket_directories=''",
		"-c max_connections=200", // parallel tests each hold a pool
	}
	if c.ephemeral {
		settings = append(settings, "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")
	}
	began := time.Now()
	out, err := c.command(ctx, "pg_ctl", "start", "-w", "-t", strconv.Itoa(int(pgctlTimeout.Seconds())),
		"-D", c.dataDir, "-l", logPath, "-o", strings.Join(settings, " ")).CombinedOutput()
	if err != nil {
		serverLog := readFrom(logPath, logStart)
		err = fmt.Errorf("pgcluster: starting postgres on port %d: %w\n%s\n%s (tail):\n%s",
			c.port, err, bytes.TrimSpace(out), logPath, tail(serverLog))
		if bytes.Contains(serverLog, []byte("could not bind")) {
			err = fmt.Errorf("%w (%w)", err, errPortInUse)
		}
		return err
	}
	c.logger.Debug("postmaster ready", "port", c.port, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// stop shuts the server down in the given pg_ctl mode. The caller holds c.mu.
func (c *Cluster) stop(ctx context.Context, mode string) error {
	if !c.running(ctx) {
		return nil
	}
	out, err := c.command(ctx, "pg_ctl", "stop", "-w", "-t", strconv.Itoa(int(pgctlTimeout.Seconds())),
		"-D", c.dataDir, "-m", mode).CombinedOutput()
	if err != nil && c.running(ctx) {
		return fmt.Errorf("pgcluster: stopping postgres in %s: %w\n%s", c.dataDir, err, bytes.TrimSpace(out))
	}
	return nil
}

// running reports whether a postmaster serves c.dataDir.
func (c *Cluster) running(ctx context.Context) bool {
	// Exit status 3 means not running, 4 means no data directory.
	return c.command(ctx, "pg_ctl", "status", "-D", c.dataDir).Run() == nil
}

// stopLeftover deals with a postmaster.pid left by an earlier run. The
// caller holds the owner file exclusively, so no live process uses the
// server: a live server of ours (its owner was killed) is stopped so that
// this run starts it with its own port and settings. A pid that now belongs
// to an unrelated process, common after a container restart, would make
// pg_ctl signal that process, so the stale file is removed instead. last is
// the process that started the server, when recorded.
func (c *Cluster) stopLeftover(ctx context.Context, mode string, last owner) error {
	pidFile := filepath.Join(c.dataDir, "postmaster.pid")
	if !c.running(ctx) {
		return nil // postgres itself discards a pid file whose process is gone
	}
	if !servesDataDir(pidFile, c.dataDir) {
		c.logger.Warn("removing stale postmaster.pid of another process", "file", pidFile)
		if err := os.Remove(pidFile); err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		return nil
	}
	c.logger.Warn("stopping postgres left running by a process that has exited", "data_dir", c.dataDir,
		"started_by_pid", last.PID, "started_by", last.Command)
	return c.stop(ctx, mode)
}

// servesDataDir reports whether the process named in pidFile works in
// dataDir, as every postmaster does. Where /proc cannot tell, it trusts the
// pid file.
func servesDataDir(pidFile, dataDir string) bool {
	content, err := os.ReadFile(pidFile)
	if err != nil {
		return true
	}
	pid, _, _ := strings.Cut(string(content), "\n")
	cwd, err := os.Readlink(filepath.Join("/proc", strings.TrimSpace(pid), "cwd"))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	same, err := sameFile(cwd, dataDir)
	return err != nil || same
}

func sameFile(a, b string) (bool, error) {
	ai, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	bi, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(ai, bi), nil
}

// ensureDatabase creates dbname unless it exists. Its first connection is
// retried briefly, so that a start only succeeds once the server answers on
// its TCP port.
func (c *Cluster) ensureDatabase(ctx context.Context, dbname string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var conn *pgx.Conn
	var err error
	for {
		if conn, err = pgx.Connect(ctx, c.URL("postgres")); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: connecting to postgres on port %d: %w", c.port, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // best-effort close of a one-off admin connection

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", dbname).Scan(&exists); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbname}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created concurrently
		err = nil
	}
	if err != nil {
		return fmt.Errorf("pgcluster: creating database %s: %w", dbname, err)
	}
	return nil
}

// command prepares a server binary to run as the server account from inside
// the data directory, since the server account may not be able to enter the
// caller's working directory.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dataDir
	if c.runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.runAs}
	}
	return cmd
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rotateLog keeps one previous log, so a dev cluster's log stays bounded.
func rotateLog(path string) {
	if fileSize(path) > maxLogSize {
		_ = os.Rename(path, path+".old") // a log that cannot rotate keeps growing, harmlessly
	}
}

func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

// readFrom returns what was appended to path after offset, which is this
// start's part of a log shared by every run.
func readFrom(path string, offset int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil
	}
	b, _ := io.ReadAll(f)
	return b
}

// tail returns the last lines of output, enough to show why a start failed.
func tail(output []byte) string {
	lines := strings.Split(strings.TrimSpace(string(output)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
