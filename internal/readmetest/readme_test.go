package readmetest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authly/authly/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// readmeBase is the address the README's commands call. The test serves on a free port and
// rewrites it in the commands it runs.
const readmeBase = "http://127.0.0.1:8000"

// TestREADMEWalkthroughRunsAsWritten starts the server as the README says, with the defaults a
// user gets (rate limits and bcrypt cost included), and runs the walkthrough against it.
func TestREADMEWalkthroughRunsAsWritten(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's walkthrough needs %s: %v", tool, err)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := walkthroughBlocks(string(readme))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if len(blocks) < 2 {
		t.Fatalf("README.md: %q has %d sh blocks; want the start command and the walkthrough", walkthroughHeading, len(blocks))
	}
	base := startServer(t, blocks[0])
	var walk []step
	for _, b := range blocks[1:] {
		walk = append(walk, steps(b)...)
	}
	runSteps(t, base, walk)
}

// startServer runs the README's start command with bash, with "make run" standing for the
// authly binary built from this tree, on a fresh database and a free port, and returns the
// server's base URL once it listens. The server is stopped when the test ends.
func startServer(t *testing.T, start block) string {
	t.Helper()
	command := strings.TrimSpace(strings.Join(start.lines, "\n"))
	if !strings.HasSuffix(command, "make run") {
		t.Fatalf("README.md:%d: the first sh block of %q is not a start command ending in make run:\n%s",
			start.line, walkthroughHeading, command)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "authly")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/server")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the server: %v\n%s", err, out)
	}

	// What make run adds to the README's command: the binary, and a database, secrets and a
	// mail directory instead of the embedded cluster's.
	cmd := exec.Command("bash", "-c", `make() {
  [ "$*" = run ] || { echo "only make run is known here, not make $*" >&2; return 1; }
  exec "$AUTHLY_BIN" serve
}
`+command)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"AUTHLY_BIN=" + bin,
		"AUTHLY_DATA_DIR=" + filepath.Join(dir, "data"),
		"AUTHLY_LISTEN_ADDR=127.0.0.1:0",
		"DATABASE_URL=" + testdb.URL(t),
		"JWT_SECRET_KEY=" + randomSecret(t),
		"JWT_REFRESH_SECRET_KEY=" + randomSecret(t),
		"AUTHLY_KEY_ENCRYPTION_KEY=" + randomKEK(t),
		// Where the embedded default writes the account mail, as make run does.
		"AUTHLY_MAIL_DIR=" + filepath.Join(dir, "data", "mail"),
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &serverLog{}
	listening := make(chan string, 1)
	go logs.read(stderr, listening)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Registered after testdb.URL's cleanup, so it runs first: the server lets go of the
	// database before it is dropped.
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the server exited with %v after SIGTERM", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("the server did not stop after SIGTERM")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})

	select {
	case addr := <-listening:
		return "http://" + addr
	case err := <-exited:
		exited <- err
		t.Fatalf("the server stopped before it listened: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("the server did not listen within 90s")
	}
	return ""
}

func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// randomKEK is a fresh key-encryption key: base64 of 32 random bytes.
func randomKEK(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// serverLog keeps the server's JSON log for when the test fails.
type serverLog struct {
	mu    sync.Mutex
	lines []string
}

// read keeps every line of r and sends the address of the "listening" line on listening.
func (l *serverLog) read(r io.Reader, listening chan<- string) {
	lines := bufio.NewScanner(r)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	for lines.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, lines.Text())
		l.mu.Unlock()
		var entry struct{ Msg, Addr string }
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry.Msg == "listening" {
			listening <- entry.Addr
		}
	}
}

func (l *serverLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// runSteps runs the steps in order in one bash, as a reader pasting them into one shell
// would, with their base URL rewritten to base, and compares each step's output with the
// README's. set -euo pipefail stops at the first command that fails or reads a variable
// that no step has set; bash's messages then name the README's line.
func runSteps(t *testing.T, base string, walk []step) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	// Each step's output goes to a file of its own, named by the step's index once the step
	// has succeeded. readmeLine maps a line of the script to the README's.
	script := []string{"set -euo pipefail"}
	readmeLine := []int{0}
	for i, s := range walk {
		script, readmeLine = append(script, "{"), append(readmeLine, s.first)
		for j, line := range s.script {
			rewritten := strings.ReplaceAll(line, readmeBase, base)
			if strings.Contains(rewritten, "://") && !strings.Contains(rewritten, base) {
				t.Fatalf("README.md:%d: a walkthrough command calls an address other than %s: %s", s.first+j, readmeBase, line)
			}
			script, readmeLine = append(script, rewritten), append(readmeLine, s.first+j)
		}
		script = append(script, fmt.Sprintf(`} >"$READMETEST_OUT/%d.partial"; mv "$READMETEST_OUT/%d.partial" "$READMETEST_OUT/%d"`, i, i, i))
		readmeLine = append(readmeLine, s.line)
	}
	path := filepath.Join(dir, "walkthrough.sh")
	if err := os.WriteFile(path, []byte(strings.Join(script, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", path)
	cmd.Dir = dir
	// No proxy variables and no ~/.curlrc: curl talks to the test's server directly.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "READMETEST_OUT=" + out}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	runErr := cmd.Run()
	// "walkthrough.sh: line 62: X: unbound variable" becomes "README.md:120: X: unbound variable".
	bashLine := regexp.MustCompile(regexp.QuoteMeta(path) + `: line (\d+):`)
	messages := bashLine.ReplaceAllStringFunc(stderr.String(), func(m string) string {
		n, _ := strconv.Atoi(bashLine.FindStringSubmatch(m)[1])
		if n < 1 || n > len(readmeLine) {
			return m
		}
		return fmt.Sprintf("README.md:%d:", readmeLine[n-1])
	})

	for i, s := range walk {
		got, err := os.ReadFile(filepath.Join(out, fmt.Sprint(i)))
		if err != nil {
			partial, _ := os.ReadFile(filepath.Join(out, fmt.Sprint(i)+".partial"))
			t.Fatalf("README.md:%d-%d: the walkthrough stopped in this step (%v):\n%s\nIt printed:\n%s",
				s.first, s.line, runErr, messages, partial)
		}
		if err := compare(s.want, string(got)); err != nil {
			t.Errorf("README.md:%d: %v\n%s", s.line, err, lastCommand(s.script))
		}
	}
	if runErr != nil {
		t.Fatalf("the walkthrough failed after its last step: %v\n%s", runErr, messages)
	}
}

// lastCommand is the step's last command with its continuation lines, for a failure message.
func lastCommand(script []string) string {
	end := len(script)
	for end > 0 && !isCommand(script[end-1]) {
		end--
	}
	start := end - 1
	for start > 0 && strings.HasSuffix(strings.TrimSpace(script[start-1]), "\\") {
		start--
	}
	if start < 0 {
		return ""
	}
	return strings.Join(script[start:end], "\n")
}
