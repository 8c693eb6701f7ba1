package pgcluster

// The owner protocol lets several processes share one data directory: a
// server started with `authly serve`, and the operator's one-off commands
// (migrate, cleanup, create-admin) run beside it. Liveness comes from flock,
// which the kernel releases when a process exits however it exits, so a
// killed owner never looks alive and a live one never looks dead, whatever
// became of its pid.
//
//   - The data directory itself is locked exclusively, briefly, around every
//     decision: initdb, start, join, stop.
//   - authly-owner.json is locked shared by every process using the cluster,
//     for as long as it uses it. A process that can lock it exclusively knows
//     that no one else does: a server still running there was left by a
//     process that has exited. The file records the port and the process that
//     started the server.
//   - authly-server.json is locked exclusively by the one process serving
//     the directory, and records its pid, command and listen address, so that
//     a second server can say who already serves it.
//
// PostgreSQL ignores files it does not know in its data directory.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	ownerFileName  = "authly-owner.json"
	serverFileName = "authly-server.json"
	// lockPoll is how often a process waiting for the data directory's lock
	// tries again; flock itself cannot be cancelled by a context.
	lockPoll = 25 * time.Millisecond
	// maxRecordSize bounds what is read from an owner file.
	maxRecordSize = 64 << 10
)

// ErrServed means another live process already serves the data directory
// (ClaimServer).
var ErrServed = errors.New("another Authly server already serves this data directory")

// owner is the record in an owner file.
type owner struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Port    int       `json:"port,omitempty"`
	Addr    string    `json:"addr,omitempty"`
	Since   time.Time `json:"since"`
}

// ClaimServer makes this process the data directory's server. It returns an
// error wrapping ErrServed, naming the other server's pid, command and
// address, when a live process already serves it; a claim whose process
// exited is taken over. The claim lasts until Stop or the process's exit.
// A nil Cluster (no embedded database) has nothing to claim.
func (c *Cluster) ClaimServer() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.serving != nil {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(c.dataDir, serverFileName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	free, err := tryLock(f, syscall.LOCK_EX)
	if err == nil && !free {
		other := readOwner(f)
		f.Close()
		return c.servedError(other)
	}
	if err == nil {
		err = writeRecord(f, owner{PID: os.Getpid(), Command: c.cmdline, Since: time.Now().UTC()})
	}
	if err != nil {
		f.Close()
		return err
	}
	c.serving = f
	return nil
}

// SetServing records the address this process serves on, so that a second
// server's refusal names it. It claims the directory first when ClaimServer
// was not called; a refused claim or a failed write is logged, since serving
// goes on either way. A nil Cluster does nothing.
func (c *Cluster) SetServing(addr string) {
	if c == nil {
		return
	}
	if err := c.ClaimServer(); err != nil {
		c.logger.Warn("recording this server's address", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.serving == nil {
		return // released by a Stop in between
	}
	rec := readOwner(c.serving)
	rec.Addr = addr
	if err := writeRecord(c.serving, rec); err != nil {
		c.logger.Warn("recording this server's address", "err", err)
	}
}

func (c *Cluster) servedError(other owner) error {
	who := "a process whose record is not written yet"
	if other.PID != 0 {
		who = fmt.Sprintf("pid %d (%s)", other.PID, other.Command)
	}
	where := "not listening yet"
	if other.Addr != "" {
		where = "listening on " + other.Addr
	}
	return fmt.Errorf("pgcluster: %w: %s, %s, serves %s; "+
		"stop it first, or give this server its own AUTHLY_DATA_DIR", ErrServed, who, where, c.dataDir)
}

// join uses the server of a cluster that other live processes use. The
// caller holds the data directory's lock.
func (c *Cluster) join(ctx context.Context, use *os.File) error {
	started := readOwner(use)
	if c.running(ctx) {
		port, ok := postmasterPort(c.dataDir)
		if !ok {
			port = started.Port
		}
		if port == 0 {
			return fmt.Errorf("pgcluster: postgres runs in %s for another process, but neither postmaster.pid nor %s names its port",
				c.dataDir, ownerFileName)
		}
		c.port = port
		c.logger.Info("using the postgres that another process started", "port", c.port,
			"started_by_pid", started.PID, "started_by", started.Command)
		return c.ensureDatabase(ctx, DefaultDatabase)
	}
	// Its users lost the server: stopped by hand, or crashed. Started again on
	// the port they know, it lets their pools reconnect.
	c.port = started.Port
	if c.port == 0 {
		var err error
		if c.port, err = freePort(); err != nil {
			return err
		}
	}
	c.logger.Warn("postgres is down while other processes use it; starting it again", "port", c.port)
	if err := c.start(ctx); err != nil {
		return err
	}
	if err := c.ensureDatabase(ctx, DefaultDatabase); err != nil {
		return err
	}
	return c.recordStart(use)
}

// release gives up this process's server claim and its use of the cluster.
// The caller holds c.mu.
func (c *Cluster) release() {
	if c.serving != nil {
		_ = clearRecord(c.serving) // the lock, released below, is what counts
		c.serving.Close()
		c.serving = nil
	}
	if c.use != nil {
		c.use.Close()
		c.use = nil
	}
}

// recordStart records this process as the one that started the server.
func (c *Cluster) recordStart(f *os.File) error {
	return writeRecord(f, owner{PID: os.Getpid(), Command: c.cmdline, Port: c.port, Since: time.Now().UTC()})
}

func (c *Cluster) openOwnerFile() (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(c.dataDir, ownerFileName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	return f, nil
}

// lockDataDir locks dir exclusively, waiting while another process starts,
// joins or stops the cluster, until ctx ends. The returned function unlocks
// it. An error wraps os.ErrNotExist when dir does not exist.
func lockDataDir(ctx context.Context, dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	for {
		locked, err := tryLock(f, syscall.LOCK_EX)
		if err != nil {
			f.Close()
			return nil, err
		}
		if locked {
			return func() { f.Close() }, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("pgcluster: waiting for another process to finish starting or stopping postgres in %s: %w",
				dir, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// tryLock takes or converts f's flock without waiting. It reports false
// when another open file holds a conflicting lock.
func tryLock(f *os.File, how int) (bool, error) {
	err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pgcluster: locking %s: %w", f.Name(), err)
	}
	return true, nil
}

// lock takes a lock that no one can be holding against us, because every
// exclusive holder of the owner file also holds the data directory's lock.
func lock(f *os.File, how int) error {
	ok, err := tryLock(f, how)
	if err == nil && !ok {
		err = fmt.Errorf("pgcluster: %s is locked by another process", f.Name())
	}
	return err
}

// writeRecord replaces f's record. It writes before it truncates, so that a
// reader racing with it sees a whole record, old or new, at the start of the
// file: readOwner decodes only the first JSON value.
func writeRecord(f *os.File, rec owner) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	b = append(b, '\n')
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if err := f.Truncate(int64(len(b))); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

func clearRecord(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// readOwner returns f's record, or the zero owner when there is none.
func readOwner(f *os.File) owner {
	var rec owner
	_ = json.NewDecoder(io.NewSectionReader(f, 0, maxRecordSize)).Decode(&rec) // no record reads as zero
	return rec
}

// postmasterPort reads the port from postmaster.pid, whose fourth line it
// is.
func postmasterPort(dataDir string) (int, bool) {
	content, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(content), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	return port, err == nil && port > 0
}

// commandLine names this process for other processes' messages. Authly's
// commands take no secrets as arguments.
func commandLine() string {
	line := strings.Join(append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...), " ")
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	return line
}
