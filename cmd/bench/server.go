package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/authly/authly/internal/pgcluster"
)

// localServer is an Authly process this tool started on the embedded default database, in a
// fresh data directory that is removed afterwards.
type localServer struct {
	cmd     *exec.Cmd
	dir     string
	url     string
	logPath string
	admin   credentials
	exited  chan struct{}
	keepDir bool
}

type credentials struct{ username, password string }

// serverEnv is the environment of a local server: the caller's environment without any
// Authly or database setting that could point it elsewhere, plus the benchmark's own.
func serverEnv(dataDir, addr string, bcryptCost int, admin credentials, extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "AUTHLY_") || strings.HasPrefix(name, "JWT_") ||
			name == "DATABASE_URL" || name == "ACCESS_TOKEN_EXPIRE_MINUTES" || name == "REFRESH_TOKEN_EXPIRE_DAYS" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"AUTHLY_DATA_DIR="+dataDir,
		"AUTHLY_LISTEN_ADDR="+addr,
		"AUTHLY_BCRYPT_COST="+strconv.Itoa(bcryptCost),
		"AUTHLY_LOG_LEVEL=warn",
		"AUTHLY_ADMIN_USERNAME="+admin.username,
		"AUTHLY_ADMIN_EMAIL="+admin.username+"@example.com",
		"AUTHLY_ADMIN_PASSWORD="+admin.password,
		// A load test from one address is exactly what rate limits exist to stop; they are
		// off for the benchmark's own server (settings a server without them ignores).
		"AUTHLY_RATE_LIMIT_LOGIN=0",
		"AUTHLY_RATE_LIMIT_IP=0",
		"AUTHLY_RATE_LIMIT_REGISTER=0",
	)
	return append(env, extra...)
}

// startLocalServer builds the server unless bin is given, starts it on a free loopback port
// with a fresh data directory, and waits until /health answers 200.
func startLocalServer(ctx context.Context, bin string, bcryptCost int, extraEnv []string, keepDir bool, logf func(string, ...any)) (*localServer, error) {
	dir, err := os.MkdirTemp("", "authly-bench-")
	if err != nil {
		return nil, err
	}
	// The embedded cluster runs as the postgres account when this runs as root, and must be
	// able to reach its data directory below this one.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	s := &localServer{dir: dir, logPath: filepath.Join(dir, "server.log"), exited: make(chan struct{}), keepDir: keepDir}
	fail := func(err error) (*localServer, error) {
		s.stop(logf)
		return nil, err
	}
	if bin == "" {
		bin = filepath.Join(dir, "authly")
		logf("building the server: go build -o %s ./cmd/server", bin)
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/server")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fail(fmt.Errorf("building the server (run from the repository root, or pass -server-bin): %w", err))
		}
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return fail(err)
	}
	s.url = "http://" + addr
	s.admin = credentials{username: "bench-admin", password: randomHex(16)}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return fail(err)
	}
	defer logFile.Close()
	s.cmd = exec.Command(bin, "serve")
	s.cmd.Env = serverEnv(filepath.Join(dir, "data"), addr, bcryptCost, s.admin, extraEnv)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		return fail(fmt.Errorf("starting %s: %w", bin, err))
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	logf("started the server (pid %d) on %s with data in %s", s.cmd.Process.Pid, s.url, dir)

	deadline := time.Now().Add(3 * time.Minute) // initdb on a slow disk included
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	for {
		resp, err := client.Get(s.url + "/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return fail(fmt.Errorf("the server exited during start-up:\n%s", s.logTail()))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("the server did not become healthy in time:\n%s", s.logTail()))
		}
	}
}

func (s *localServer) pid() int { return s.cmd.Process.Pid }

// postmasterPID is the embedded cluster's main process, from its postmaster.pid.
func (s *localServer) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "data", "pg", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// stop ends the server with SIGTERM, which drains requests and stops the embedded cluster,
// then removes the data directory. A server that does not stop in time is killed and its
// cluster stopped directly.
func (s *localServer) stop(logf func(string, ...any)) {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(60 * time.Second):
			logf("the server did not stop within 60s; killing it")
			_ = s.cmd.Process.Kill()
			<-s.exited
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := pgcluster.StopOrphan(ctx, filepath.Join(s.dir, "data", "pg")); err != nil {
				logf("stopping the embedded cluster: %v", err)
			}
			cancel()
		}
	}
	if s.keepDir {
		logf("kept the server's data directory and log in %s", s.dir)
		return
	}
	_ = os.RemoveAll(s.dir)
}

// logTail is the end of the server's log, for error messages.
func (s *localServer) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// serverErrors counts the error-level lines the server logged: every 5xx is logged once.
func (s *localServer) serverErrors() int {
	b, _ := os.ReadFile(s.logPath)
	return bytes.Count(b, []byte(`"level":"ERROR"`))
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// checkLoopback refuses a target that is not on this machine: the benchmark generates
// traffic for loopback only.
func checkLoopback(ctx context.Context, host string) error {
	if host == "localhost" {
		return nil
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return err
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, which is not a loopback address: the benchmark only sends traffic to this machine", host, ip.IP)
		}
	}
	if len(ips) == 0 {
		return errors.New("no address for " + host)
	}
	return nil
}
