package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/pgcluster"
	"github.com/authly/authly/internal/testdb"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// registration is one POST /api/v1/users outcome.
type registration struct {
	username string
	status   int
	code     string
	took     time.Duration
	err      error
}

// registerLoad registers users with unique names from workers goroutines until stop closes,
// and returns every outcome. Keep-alives are off, so a request the server never read fails
// to connect rather than dying on a reused connection.
func registerLoad(base string, workers int, stop <-chan struct{}) func() []registration {
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var (
		mu      sync.Mutex
		results []registration
		wg      sync.WaitGroup
		seq     atomic.Int64
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("load%d_%d", w, seq.Add(1))
				body := fmt.Sprintf(`{"username":%q,"email":"%s@example.com","password":"a fine long passphrase"}`, name, name)
				start := time.Now()
				resp, err := client.Post(base+"/api/v1/users", "application/json", strings.NewReader(body))
				r := registration{username: name, err: err, took: time.Since(start)}
				if err == nil {
					r.status = resp.StatusCode
					var p struct{ Code string }
					_ = json.NewDecoder(resp.Body).Decode(&p)
					resp.Body.Close()
					r.code = p.Code
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	return func() []registration {
		wg.Wait()
		return results
	}
}

// assertPersistedExactly checks that the users in the database are exactly the ones whose
// registration got a 201: no 2xx was lost, and no request was carried out without its answer.
func assertPersistedExactly(t *testing.T, url string, results []registration) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.Query(context.Background(), "SELECT username::text FROM users WHERE username LIKE 'load%'")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for rows.Next() {
		var u string
		_ = rows.Scan(&u)
		stored[u] = true
	}
	created := 0
	for _, r := range results {
		if r.status == http.StatusCreated {
			created++
			if !stored[r.username] {
				t.Errorf("%s got 201 but is not in the database", r.username)
			}
		}
	}
	if created != len(stored) {
		t.Errorf("%d users stored, %d registrations answered 201", len(stored), created)
	}
}

func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "authly")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("building the server: %v", err)
	}
	url := testdb.URL(t)
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+url, "JWT_SECRET_KEY="+secretA, "AUTHLY_KEY_ENCRYPTION_KEY="+testKEK, "JWT_REFRESH_SECRET_KEY="+secretB,
		"AUTHLY_LISTEN_ADDR="+addr, "AUTHLY_METRICS_ADDR="+metricsAddr, "AUTHLY_MAIL_DIR="+t.TempDir(),
		// A realistic cost keeps requests in flight when the signal lands.
		"AUTHLY_BCRYPT_COST=10", "AUTHLY_LOG_LEVEL=warn",
		// The load comes from one address; rate limits are not under test here.
		"AUTHLY_RATE_LIMIT_IP=0", "AUTHLY_RATE_LIMIT_REGISTER=0",
		// Nor is load shedding: on a loaded machine the bcrypt pool would refuse some of the
		// registrations with 503 server_busy.
		"AUTHLY_HASH_MAX_WAIT=1m")
	var logs lockedWriter
	logs.w = io.Discard
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the server never became ready")
		}
		time.Sleep(100 * time.Millisecond)
	}

	t.Run("metrics are served on their own listener only", func(t *testing.T) {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, name := range []string{"authly_db_pool_total_conns", "authly_http_requests_total", "go_goroutines"} {
			if !strings.Contains(string(body), name) {
				t.Errorf("metrics lack %s", name)
			}
		}
		public, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		public.Body.Close()
		if public.StatusCode != http.StatusNotFound {
			t.Fatalf("the public listener serves /metrics: %d", public.StatusCode)
		}
	})

	stop := make(chan struct{})
	wait := registerLoad(base, 8, stop)
	time.Sleep(700 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the server exited with %v after SIGTERM", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("the server did not exit after SIGTERM")
	}
	close(stop)
	results := wait()

	var created, refused int
	for _, r := range results {
		switch {
		case r.status == http.StatusCreated:
			created++
		case r.err != nil && (errors.Is(r.err, syscall.ECONNREFUSED) || errors.Is(r.err, syscall.ECONNRESET) || errors.Is(r.err, io.EOF)):
			// Refused, or still in the kernel's accept queue when the listener closed. That
			// none of these was carried out is checked against the database below.
			refused++
		default:
			t.Errorf("registration %s: status %d code %q err %v", r.username, r.status, r.code, r.err)
		}
	}
	if created == 0 || refused == 0 {
		t.Fatalf("the load did not straddle the shutdown: %d created, %d refused", created, refused)
	}
	assertPersistedExactly(t, url, results)
}

func TestDatabaseOutageAnswers503AndRecovers(t *testing.T) {
	ctx := context.Background()
	// A private cluster: stopping the shared one would break other tests' databases.
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(traversableTempDir(t), "pg"), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	url := cluster.URL(pgcluster.DefaultDatabase)
	base, stopServer := startServe(t, map[string]string{
		"DATABASE_URL": url, "JWT_SECRET_KEY": secretA, "AUTHLY_KEY_ENCRYPTION_KEY": testKEK, "JWT_REFRESH_SECRET_KEY": secretB,
		"AUTHLY_LISTEN_ADDR": "127.0.0.1:0", "AUTHLY_BCRYPT_COST": "4", "AUTHLY_MAIL_DIR": t.TempDir(),
		"AUTHLY_DB_ACQUIRE_TIMEOUT": "500ms", "AUTHLY_LOG_LEVEL": "error",
		"AUTHLY_RATE_LIMIT_IP": "0", "AUTHLY_RATE_LIMIT_REGISTER": "0",
	})

	stop := make(chan struct{})
	wait := registerLoad(base, 4, stop)
	time.Sleep(500 * time.Millisecond)
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	time.Sleep(2 * time.Second)
	ready, err := http.Get(base + "/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	ready.Body.Close()
	live, err := http.Get(base + "/health/live")
	if err != nil {
		t.Fatal(err)
	}
	live.Body.Close()
	if ready.StatusCode != http.StatusServiceUnavailable || live.StatusCode != http.StatusOK {
		t.Fatalf("with the database down: ready %d, live %d", ready.StatusCode, live.StatusCode)
	}
	if err := cluster.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	time.Sleep(2 * time.Second)
	close(stop)
	results := wait()
	if err := stopServer(); err != nil {
		t.Fatal(err)
	}

	var unavailable int
	for _, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("%s: transport error %v", r.username, r.err)
		case r.status == http.StatusCreated:
		case r.status == http.StatusServiceUnavailable && r.code == "database_unavailable":
			unavailable++
			if r.took > 1500*time.Millisecond {
				t.Errorf("a 503 took %v; it should come within about a second", r.took)
			}
		default:
			t.Errorf("%s: status %d code %q", r.username, r.status, r.code)
		}
	}
	if unavailable == 0 {
		t.Fatalf("no 503 while the database was down (%d results, down at %v, up at %v)", len(results), down, up)
	}
	// Recovery without restarting Authly: the last registration of the run succeeded.
	last := results[len(results)-1]
	if last.status != http.StatusCreated {
		t.Fatalf("Authly did not recover: the last registration got %d %q", last.status, last.code)
	}
	assertPersistedExactly(t, url, results)
}
