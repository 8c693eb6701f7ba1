// Package testredis gives tests a real Redis server and a private key namespace on it.
//
// The server comes from AUTHLY_TEST_REDIS_URL when set: a redis:// URL. Otherwise
// the first call to URL starts a throwaway redis-server for the whole test binary,
// on a free 127.0.0.1 port with persistence off, and Main stops it when the tests
// end. Tests never skip for want of Redis: a missing redis-server fails them with
// the way to get one.
//
// Tests run in parallel against one server, so none may FLUSHDB. Each test puts
// its keys under its own Prefix instead.
//
// A package that uses testredis declares
//
//	func TestMain(m *testing.M) { os.Exit(testredis.Main(m)) }
//
// or, to run inside another harness's Main, passes a Runner that calls it.
package testredis

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvURL names the variable that points the tests at an existing server.
const EnvURL = "AUTHLY_TEST_REDIS_URL"

// fallbackBinary is where Debian's redis-server package installs the server,
// tried when the tests run with a PATH that lacks /usr/bin.
const fallbackBinary = "/usr/bin/redis-server"

const (
	// portAttempts covers the race between closing the probe listener and
	// redis-server binding the same port.
	portAttempts = 3
	startTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
	// maxLogSize bounds the server output kept to explain a failed start.
	maxLogSize = 64 << 10
)

// A test binary has at most one throwaway server, started by the first URL
// call and stopped by Main, which is why this is package state.
var (
	mainRunning atomic.Bool
	startOnce   sync.Once
	started     *server
	startErr    error
)

// Runner runs a test binary's tests and returns the exit code: a *testing.M,
// or another harness's Main wrapped around one, such as testdb's.
type Runner interface{ Run() int }

// Main wraps a test binary's TestMain: it runs the tests, then stops the
// throwaway server if one was started. It returns the exit code for os.Exit.
// On Linux a test binary that dies without reaching that point, killed by a
// timeout or a signal, takes its server with it.
func Main(m Runner) int {
	mainRunning.Store(true)
	code := m.Run()
	if started != nil {
		if err := started.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testredis: %v\n", err)
		}
	}
	return code
}

// URL returns a redis:// URL for tests: AUTHLY_TEST_REDIS_URL when set;
// otherwise that of a throwaway redis-server started once per test binary.
func URL(t testing.TB) string {
	t.Helper()
	if !mainRunning.Load() {
		t.Fatal("testredis: Main is not running; this package's tests need\n\n" +
			"\tfunc TestMain(m *testing.M) { os.Exit(testredis.Main(m)) }")
	}
	if raw := os.Getenv(EnvURL); raw != "" {
		return raw
	}
	startOnce.Do(func() {
		var binary string
		binary, startErr = findServer(exec.LookPath, fallbackBinary)
		if startErr == nil {
			started, startErr = start(binary)
		}
	})
	if startErr != nil {
		t.Fatalf("testredis: %v", startErr)
	}
	return started.url
}

// Client returns a client connected to URL(t), closed when the test ends.
// Tests share the server: keep keys under Prefix(t).
func Client(t testing.TB) *redis.Client {
	t.Helper()
	client := connect(t, URL(t))
	t.Cleanup(func() { client.Close() }) //nolint:errcheck // closing a test client has nothing to report
	return client
}

// Prefix returns a key prefix no other test, in this binary or another
// sharing the server, will use. Keys under it are deleted when the test ends.
func Prefix(t testing.TB) string {
	t.Helper()
	url := URL(t)
	var random [8]byte
	rand.Read(random[:])
	prefix := "authly-test:" + keySafe(t.Name()) + ":" + hex.EncodeToString(random[:]) + ":"
	t.Cleanup(func() {
		if err := deleteUnder(url, prefix); err != nil {
			t.Errorf("testredis: deleting the keys under %q: %v", prefix, err)
		}
	})
	return prefix
}

func connect(t testing.TB, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}
	client := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close() //nolint:errcheck // the connection error is the one to report
		t.Fatalf("testredis: connecting to %s: %v", opts.Addr, err)
	}
	return client
}

// deleteUnder removes every key under prefix. SCAN's MATCH is a glob, and
// keySafe leaves no glob characters in a prefix, so nothing outside it matches.
func deleteUnder(url, prefix string) error {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	client := redis.NewClient(opts)
	defer client.Close() //nolint:errcheck // a one-off cleanup connection
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	return client.Unlink(ctx, keys...).Err()
}

// keySafe keeps letters, digits and a few separators of a test name, so a
// prefix is readable in redis-cli and holds no glob characters.
func keySafe(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '/', r == '-', r == '.':
			return r
		default:
			return '_'
		}
	}, name)
}

// findServer locates redis-server on PATH, then at fallback.
func findServer(lookPath func(string) (string, error), fallback string) (string, error) {
	if path, err := lookPath("redis-server"); err == nil {
		return path, nil
	}
	if info, err := os.Stat(fallback); err == nil && !info.IsDir() {
		return fallback, nil
	}
	return "", fmt.Errorf("redis-server is not on PATH nor at %s: install it "+
		"(`apt-get install redis-server`) or set %s to a redis:// URL", fallback, EnvURL)
}

// server is a redis-server child process.
type server struct {
	cmd    *exec.Cmd
	url    string
	exited chan struct{} // closed once cmd.Wait returns
	log    *cappedBuffer
}

func start(binary string) (*server, error) {
	var errs []error
	for range portAttempts {
		srv, err := startOn(binary)
		if err == nil {
			return srv, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func startOn(binary string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// No persistence: the data is thrown away, and writing it would only
	// slow the tests and litter the directory.
	cmd := exec.Command(binary,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", os.TempDir(),
		"--daemonize", "no",
	)
	cmd.Dir = os.TempDir()
	srv := &server{cmd: cmd, url: "redis://" + addr, exited: make(chan struct{}), log: &cappedBuffer{max: maxLogSize}}
	cmd.Stdout, cmd.Stderr = srv.log, srv.log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	go func() {
		cmd.Wait() //nolint:errcheck // the exit is observed through srv.exited
		close(srv.exited)
	}()
	if err := srv.waitReady(addr); err != nil {
		srv.kill()
		return nil, fmt.Errorf("redis-server on %s: %w\n%s", addr, err, srv.log.tail())
	}
	return srv, nil
}

func (s *server) waitReady(addr string) error {
	deadline := time.Now().Add(startTimeout)
	for {
		pid, err := serverPID(addr)
		if err == nil && pid != s.cmd.Process.Pid {
			// Another process took the port between freePort and our bind.
			err = fmt.Errorf("the port is served by process %d, not ours", pid)
			s.kill()
		}
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("exited before answering: %s: %w", s.cmd.ProcessState, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer after %s: %w", startTimeout, err)
		}
	}
}

// serverPID asks the server on addr for its process id. It speaks just
// enough of the protocol for that, without a client whose pool would back
// off after the refused dials of a server still starting.
func serverPID(addr string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return 0, err
	}
	if _, err := conn.Write([]byte("INFO server\r\n")); err != nil {
		return 0, err
	}
	reader := bufio.NewReader(conn)
	header, err := reader.ReadString('\n')
	if err != nil {
		return 0, err
	}
	size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(header, "$")))
	if !strings.HasPrefix(header, "$") || err != nil {
		return 0, fmt.Errorf("INFO answered %q", strings.TrimSpace(header))
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(reader, body); err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(body)) {
		if value, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(value)
		}
	}
	return 0, errors.New("INFO server has no process_id")
}

// stop asks the server to shut down and kills it if it does not.
func (s *server) stop() error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.kill()
		return fmt.Errorf("stopping redis-server: %w", err)
	}
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopTimeout):
		s.kill()
		return fmt.Errorf("redis-server did not stop within %s; killed it", stopTimeout)
	}
}

func (s *server) kill() {
	s.cmd.Process.Kill() //nolint:errcheck // already gone is as good as killed
	<-s.exited
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cappedBuffer keeps the first max bytes written to it; the server writes
// from its own goroutine while a failed start reads.
type cappedBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

// tail returns the last lines written, enough to show why a start failed.
func (b *cappedBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(b.buf)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
