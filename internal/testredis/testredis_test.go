package testredis

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestTheThrowawayServerKeepsNothingOnDisk(t *testing.T) {
	if os.Getenv(EnvURL) != "" {
		t.Skipf("%s is set, so no throwaway server is started", EnvURL)
	}
	t.Parallel()
	client := Client(t)
	for param, want := range map[string]string{"save": "", "appendonly": "no", "bind": "127.0.0.1"} {
		got, err := client.ConfigGet(t.Context(), param).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got[param] != want {
			t.Errorf("CONFIG GET %s = %q, want %q", param, got[param], want)
		}
	}
}

func TestEveryCallerSharesOneServer(t *testing.T) {
	t.Parallel()
	first, second := URL(t), URL(t)
	if first != second {
		t.Errorf("URL changed between calls: %s, then %s", first, second)
	}
}

func TestPrefixesAreUniqueAndTheirKeysGoAway(t *testing.T) {
	t.Parallel()
	client := Client(t)
	var prefixes []string
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"first", "same name*?[x]", "same name*?[x]"} {
			t.Run(name, func(t *testing.T) {
				prefix := Prefix(t)
				if strings.ContainsAny(prefix, `*?[]\`) {
					t.Errorf("prefix %q holds glob characters", prefix)
				}
				prefixes = append(prefixes, prefix)
				if err := client.Set(t.Context(), prefix+"key", "value", time.Minute).Err(); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
	if prefixes[1] == prefixes[2] || prefixes[0] == prefixes[1] {
		t.Errorf("two tests got the same prefix: %q", prefixes)
	}
	// Test binaries sharing a server run tests of the same name.
	if a, b := Prefix(t), Prefix(t); a == b {
		t.Errorf("two calls in one test both got %q", a)
	}
	for _, prefix := range prefixes {
		n, err := client.Exists(t.Context(), prefix+"key").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%skey outlived its test", prefix)
		}
	}
}

func TestAMissingServerBinarySaysHowToGetOne(t *testing.T) {
	t.Parallel()
	notFound := func(string) (string, error) { return "", exec.ErrNotFound }
	_, err := findServer(notFound, filepath.Join(t.TempDir(), "redis-server"))
	if err == nil {
		t.Fatal("findServer found a server that does not exist")
	}
	for _, hint := range []string{"apt-get install redis-server", EnvURL} {
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("error %q does not mention %q", err, hint)
		}
	}
}

func TestTheFallbackBinaryIsUsedWhenPathLacksOne(t *testing.T) {
	t.Parallel()
	fallback := filepath.Join(t.TempDir(), "redis-server")
	if err := os.WriteFile(fallback, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	notFound := func(string) (string, error) { return "", exec.ErrNotFound }
	got, err := findServer(notFound, fallback)
	if err != nil || got != fallback {
		t.Errorf("findServer = %q, %v; want %q", got, err, fallback)
	}
}

// helperEnv makes the test binary, run again as a child, start a server and
// wait to be killed.
const helperEnv = "TESTREDIS_HELPER_START_SERVER"

func TestHelperStartsAServerAndWaits(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("runs only as the child of TestTheServerDiesWithAKilledTestBinary")
	}
	os.Stdout.WriteString("url=" + URL(t) + "\n")
	time.Sleep(time.Minute)
}

func TestTheServerDiesWithAKilledTestBinary(t *testing.T) {
	if _, err := findServer(exec.LookPath, fallbackBinary); err != nil && os.Getenv(EnvURL) != "" {
		t.Skipf("%s is set and there is no redis-server to start: %v", EnvURL, err)
	}
	t.Parallel()
	child := exec.Command(os.Args[0], "-test.run=^TestHelperStartsAServerAndWaits$", "-test.count=1")
	child.Env = append(os.Environ(), helperEnv+"=1", EnvURL+"=")
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		child.Process.Kill()
		child.Wait()
	})
	var url string
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if after, ok := strings.CutPrefix(lines.Text(), "url="); ok {
			url = after
			break
		}
	}
	if url == "" {
		t.Fatal("the child printed no server URL")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := net.Dial("tcp", opts.Addr); err != nil {
		t.Fatalf("the child's server is not listening: %v", err)
	} else {
		conn.Close()
	}

	// SIGKILL leaves Main no chance to clean up: only the kernel can stop
	// the server now.
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.Dial("tcp", opts.Addr)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if conn != nil {
			conn.Close()
		}
		if time.Now().After(deadline) {
			if pid, err := serverPID(opts.Addr); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("the server on %s outlived its killed test binary", opts.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTheServerIsIdentifiedByItsProcess(t *testing.T) {
	if os.Getenv(EnvURL) != "" {
		t.Skipf("%s is set, so no throwaway server is started", EnvURL)
	}
	t.Parallel()
	opts, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := serverPID(opts.Addr)
	if err != nil || pid != started.cmd.Process.Pid {
		t.Errorf("serverPID = %d, %v; want the child's %d", pid, err, started.cmd.Process.Pid)
	}
}
