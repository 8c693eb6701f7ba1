package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// report is everything a run measured; it is written as JSON.
type report struct {
	Started   time.Time   `json:"started"`
	Machine   machineInfo `json:"machine"`
	Target    string      `json:"target"`
	Settings  settings    `json:"settings"`
	Results   []result    `json:"results"`
	Notes     []string    `json:"notes,omitempty"`
	ServerLog int         `json:"server_error_log_lines,omitempty"`
}

type settings struct {
	Scenarios       []string `json:"scenarios"`
	Concurrency     []int    `json:"concurrency"`
	WarmupSeconds   float64  `json:"warmup_seconds"`
	DurationSeconds float64  `json:"duration_seconds"`
	TimeoutSeconds  float64  `json:"request_timeout_seconds"`
	BcryptCost      int      `json:"bcrypt_cost"`
	PasswordHash    string   `json:"password_hash"`
	ServerEnv       []string `json:"server_env,omitempty"`
	// JWTAlgorithms are the -jwt-algorithm values, each run against its own local server.
	JWTAlgorithms []string `json:"jwt_algorithms,omitempty"`
}

func writeJSON(path string, r *report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeTable prints the results as a Markdown table, which reads as well in a terminal as
// in docs/benchmarks.md.
func writeTable(w io.Writer, r *report) {
	fmt.Fprintf(w, "\n%s, %d CPUs, %d MiB; %s; load average %.2f at start\n", r.Machine.CPUModel, r.Machine.CPUs,
		r.Machine.MemoryMiB, r.Target, r.Machine.LoadAvg1)
	fmt.Fprintf(w, "password hash %s; warm-up %v, measured %v per run; latency of 2xx answers, in ms; CPU in CPU-seconds per 1,000 requests\n\n",
		r.Settings.PasswordHash, seconds(r.Settings.WarmupSeconds), seconds(r.Settings.DurationSeconds))
	fmt.Fprintln(w, "| scenario | conc | req/s | ok/s | p50 | p90 | p99 | statuses | lost | Authly CPU | PG CPU | tool CPU | busy % | other % | Authly peak RSS MiB |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, res := range r.Results {
		fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %s | %s | %s | %s | %d | %s | %s | %.4f | %.0f | %.0f | %s |\n",
			res.label(), res.Concurrency, res.PerSecond, res.OKPerSecond,
			ms(res.Latency, func(l *latency) float64 { return l.P50 }),
			ms(res.Latency, func(l *latency) float64 { return l.P90 }),
			ms(res.Latency, func(l *latency) float64 { return l.P99 }),
			statusText(res.Statuses), res.LostRotations,
			optional4(res.ServerCPUPer1k), optional4(res.PostgresCPUPer1k), res.ToolCPUPer1k,
			res.MachineBusyPercent, res.OtherCPUPercent, optionalMiB(res.ServerPeakRSSMiB))
		if len(res.Ops) > 1 {
			for _, op := range res.Ops {
				fmt.Fprintf(w, "| ↳ %s | | %.1f | %.1f | %s | %s | %s | %s | %d | | | | | | |\n",
					op.Op, op.PerSecond, op.OKPerSecond,
					ms(op.Latency, func(l *latency) float64 { return l.P50 }),
					ms(op.Latency, func(l *latency) float64 { return l.P90 }),
					ms(op.Latency, func(l *latency) float64 { return l.P99 }),
					statusText(op.Statuses), op.LostRotations)
			}
		}
	}
	for _, res := range r.Results {
		if res.Revocation != "" {
			fmt.Fprintf(w, "\nRevocation after the %s run at concurrency %d: a logout, then the same access token: %s\n", res.label(), res.Concurrency, res.Revocation)
		}
	}
	var rejected []string
	for _, res := range r.Results {
		if res.Rejected != nil {
			rejected = append(rejected, fmt.Sprintf("%s@%d: p50 %.1f ms, p99 %.1f ms", res.label(), res.Concurrency, res.Rejected.P50, res.Rejected.P99))
		}
	}
	if len(rejected) > 0 {
		fmt.Fprintf(w, "\nNon-2xx answers (counted in statuses, not in the latency columns): %s\n", strings.Join(rejected, "; "))
	}
	header := false
	for _, res := range r.Results {
		f := res.Floor
		if f == nil {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\n%s floor, measured right before and right after each run: the median of single hashes (%s); ceiling = %d CPUs ÷ that time; and %d goroutines hashing flat out, alone\n",
				f.Algorithm, f.Parameters, f.CPUs, f.CPUs)
			header = true
		}
		fmt.Fprintf(w, "  %-14s conc %2d: %6.1f ok/s; one hash %.1f ms (median of %d) → ceiling %.1f/s (flat out %.1f/s): %5.1f%% of the ceiling\n",
			res.Scenario, res.Concurrency, res.OKPerSecond, f.HashMillis, f.Samples, f.CeilingPerSecond, f.ParallelPerSecond, res.BcryptCeilingPct)
	}
	header = false
	for _, res := range r.Results {
		if res.ServerLogLinesPerSecond == nil || !res.bcryptBound() {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\nRefusals (429 and 503 answers) and what the server wrote to its log (standard output and error) during each run\n")
			header = true
		}
		fmt.Fprintf(w, "  %-14s conc %2d: %7.1f refusals/s; log %6.1f lines/s, %8.0f bytes/s\n",
			res.Scenario, res.Concurrency, res.RefusedPerSecond, *res.ServerLogLinesPerSecond, *res.ServerLogBytesPerSecond)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func ms(l *latency, f func(*latency) float64) string {
	if l == nil {
		return "–"
	}
	v := f(l)
	switch {
	case math.IsNaN(v):
		return "–"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func statusText(m map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, " ")
}

func optional4(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", *v)
}

func optionalMiB(v float64) string {
	if v == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", v)
}
