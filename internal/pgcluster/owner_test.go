package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The owner protocol is between processes, so these tests run the test
// binary again as a child that opens the cluster the way an Authly command
// does (helperMain) and holds it until its standard input closes.
const (
	helperDataDirEnv = "PGCLUSTER_HELPER_DATA_DIR"
	helperServeEnv   = "PGCLUSTER_HELPER_SERVE"
)

func TestMain(m *testing.M) {
	if dataDir := os.Getenv(helperDataDirEnv); dataDir != "" {
		os.Exit(helperMain(dataDir, os.Getenv(helperServeEnv)))
	}
	os.Exit(m.Run())
}

// helperMain opens the cluster in dataDir, claims it as a server listening
// on serveAddr when that is set, prints "port=N", waits for its standard
// input to close, and stops.
func helperMain(dataDir, serveAddr string) int {
	ctx := context.Background()
	c, err := Start(ctx, Options{DataDir: dataDir, Ephemeral: true})
	if err != nil {
		fmt.Println("error=" + err.Error())
		return 1
	}
	if serveAddr != "" {
		if err := c.ClaimServer(); err != nil {
			fmt.Println("error=" + err.Error())
			return 1
		}
		c.SetServing(serveAddr)
	}
	fmt.Printf("port=%d\n", c.Port())
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := c.Stop(ctx); err != nil {
		fmt.Println("error=" + err.Error())
		return 1
	}
	return 0
}

// child is a helper process holding a cluster.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	port  int
	exit  chan error
}

// startChild runs a helper on dataDir and waits until it holds the cluster.
func startChild(t *testing.T, dataDir, serveAddr string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperDataDirEnv+"="+dataDir, helperServeEnv+"="+serveAddr)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, stdin: stdin, exit: make(chan error, 1)}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := lines.Text()
		if after, ok := strings.CutPrefix(line, "port="); ok {
			ch.port, _ = strconv.Atoi(after)
			break
		}
		if after, ok := strings.CutPrefix(line, "error="); ok {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper: %s", after)
		}
	}
	if ch.port == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the helper printed no port")
	}
	go func() {
		_, _ = io.Copy(io.Discard, stdout)
		ch.exit <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-ch.exit
		}
	})
	return ch
}

// finish closes the helper's input, so it stops the way a command ends, and
// waits for it to exit.
func (ch *child) finish(t *testing.T) {
	t.Helper()
	ch.stdin.Close()
	select {
	case err := <-ch.exit:
		if err != nil {
			t.Fatalf("helper exited with %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the helper did not exit")
	}
}

// kill ends the helper without giving it a chance to clean up.
func (ch *child) kill(t *testing.T) {
	t.Helper()
	if err := ch.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-ch.exit
}

func authlyURL(port int) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/authly?sslmode=disable", port)
}

func answers(ctx context.Context, port int) bool {
	conn, err := pgx.Connect(ctx, authlyURL(port))
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx) == nil
}

func isRunning(t *testing.T, dataDir string) bool {
	t.Helper()
	c, err := newCluster(Options{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	return c.running(t.Context())
}

func TestALiveOwnersClusterIsUsedAndLeftRunning(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(tempParent(t), "data")
	owner := startChild(t, dataDir, "")
	postmaster := postmasterPID(t, dataDir)

	c, err := Start(t.Context(), Options{DataDir: dataDir, Ephemeral: true})
	if err != nil {
		t.Fatalf("Start beside a live owner: %v", err)
	}
	if c.Port() != owner.port {
		t.Errorf("Start uses port %d, the owner's server listens on %d", c.Port(), owner.port)
	}
	if got := postmasterPID(t, dataDir); got != postmaster {
		t.Errorf("the postmaster changed from pid %d to %d: the live owner's server was restarted", postmaster, got)
	}
	if got := queryInt(t, c.URL("authly"), "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d", got)
	}

	if err := c.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !answers(t.Context(), owner.port) {
		t.Fatal("the second process's Stop stopped the live owner's server")
	}
	if got := postmasterPID(t, dataDir); got != postmaster {
		t.Errorf("the postmaster changed from pid %d to %d", postmaster, got)
	}

	// The owner is now the last user: its Stop stops the server.
	owner.finish(t)
	if isRunning(t, dataDir) {
		t.Error("the server still runs after its last user stopped")
	}
}

func TestTheLastProcessToLeaveStopsTheCluster(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(tempParent(t), "data")
	c := startCluster(t, Options{DataDir: dataDir, Ephemeral: true})
	guest := startChild(t, dataDir, "")
	if guest.port != c.Port() {
		t.Fatalf("the second process uses port %d, the server listens on %d", guest.port, c.Port())
	}

	// The process that started the server leaves first; the other still uses it.
	if err := c.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !answers(t.Context(), guest.port) {
		t.Fatal("Stop stopped a server that another live process uses")
	}
	guest.finish(t)
	if isRunning(t, dataDir) {
		t.Error("the server still runs after its last user stopped")
	}
}

func TestADeadOwnersClusterIsTakenOver(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(tempParent(t), "data")
	owner := startChild(t, dataDir, "")
	orphan := postmasterPID(t, dataDir)
	owner.kill(t)
	if !answers(t.Context(), owner.port) {
		t.Fatal("the server died with its owner; there is nothing to take over")
	}

	var logs lockedBuffer
	c := startCluster(t, Options{DataDir: dataDir, Ephemeral: true, Logger: textLogger(&logs)})
	waitGone(t, orphan)
	if got := postmasterPID(t, dataDir); got == orphan {
		t.Error("the dead owner's postmaster still serves the directory")
	}
	if got := queryInt(t, c.URL("authly"), "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d", got)
	}
	if want := "stopping postgres left running by a process that has exited"; !strings.Contains(logs.String(), want) {
		t.Errorf("the log does not say %q:\n%s", want, logs.String())
	}
	if want := "started_by_pid=" + strconv.Itoa(owner.cmd.Process.Pid); !strings.Contains(logs.String(), want) {
		t.Errorf("the log does not name the dead owner (%s):\n%s", want, logs.String())
	}
}

func TestStopOrphanStopsOnlyAServerNoOneUses(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(tempParent(t), "data")
	owner := startChild(t, dataDir, "")

	if err := StopOrphan(t.Context(), dataDir); err != nil {
		t.Fatalf("StopOrphan beside a live owner: %v", err)
	}
	if !answers(t.Context(), owner.port) {
		t.Fatal("StopOrphan stopped a server whose owner lives")
	}

	owner.kill(t)
	if err := StopOrphan(t.Context(), dataDir); err != nil {
		t.Fatalf("StopOrphan: %v", err)
	}
	if isRunning(t, dataDir) {
		t.Error("StopOrphan left a dead owner's server running")
	}
}

func TestASecondServerIsRefusedWithTheFirstsAddress(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(tempParent(t), "data")
	const addr = "127.0.0.1:48123"
	first := startChild(t, dataDir, addr)

	c := startCluster(t, Options{DataDir: dataDir, Ephemeral: true})
	err := c.ClaimServer()
	if !errors.Is(err, ErrServed) {
		t.Fatalf("ClaimServer beside a live server = %v, want ErrServed", err)
	}
	for _, want := range []string{addr, "pid " + strconv.Itoa(first.cmd.Process.Pid), dataDir, "AUTHLY_DATA_DIR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not mention %q", err, want)
		}
	}
	// Being refused as a server does not stop anyone's database.
	if !answers(t.Context(), first.port) {
		t.Fatal("the refused server's cluster stopped")
	}

	// A server that died gives up its claim with its life.
	first.kill(t)
	if err := c.ClaimServer(); err != nil {
		t.Fatalf("ClaimServer after the first server died: %v", err)
	}
	c.SetServing("127.0.0.1:48124")
	second := exec.Command(os.Args[0], "-test.run=^$")
	second.Env = append(os.Environ(), helperDataDirEnv+"="+dataDir, helperServeEnv+"=127.0.0.1:48125")
	second.Stdin = strings.NewReader("")
	out, err := second.Output()
	if err == nil {
		t.Fatalf("a third server was not refused:\n%s", out)
	}
	if !strings.Contains(string(out), "127.0.0.1:48124") {
		t.Errorf("the third server's refusal does not name the serving address:\n%s", out)
	}

	// Stop gives the claim up.
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	next := startCluster(t, Options{DataDir: dataDir, Ephemeral: true})
	if err := next.ClaimServer(); err != nil {
		t.Fatalf("ClaimServer after the server stopped: %v", err)
	}
}

func TestANilClusterHasNothingToClaim(t *testing.T) {
	t.Parallel()
	var c *Cluster
	if err := c.ClaimServer(); err != nil {
		t.Errorf("ClaimServer on nil: %v", err)
	}
	c.SetServing("127.0.0.1:1") // must not panic
}

func TestAClusterItsUsersLostIsStartedOnTheirPort(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(tempParent(t), "data")
	owner := startChild(t, dataDir, "")
	// Someone stops the server behind its owner's back.
	byHand, err := newCluster(Options{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := byHand.command(t.Context(), "pg_ctl", "stop", "-w", "-D", dataDir, "-m", "fast").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
	if answers(t.Context(), owner.port) {
		t.Fatal("the server still answers after pg_ctl stop")
	}

	c := startCluster(t, Options{DataDir: dataDir, Ephemeral: true})
	if c.Port() != owner.port {
		t.Errorf("the server came back on port %d; its live owner knows %d", c.Port(), owner.port)
	}
	if !answers(t.Context(), owner.port) {
		t.Error("the owner's URL does not answer after the restart")
	}
}

// lockedBuffer collects log output written from any goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func textLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
