package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat. Linux fixes it at
// 100 on every architecture Go supports; reading it properly needs sysconf, which needs cgo.
const clockTicks = 100

// procCPU returns the user plus system CPU time of a process and, with children set, of its
// reaped children too.
func procCPU(pid int, children bool) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	// Fields after the command: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	n := 2
	if children {
		n = 4
	}
	var ticks int64
	for _, s := range f[11 : 11+n] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// statFields returns the fields of /proc/<pid>/stat after the command name, which may itself
// hold spaces and parentheses.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return f, nil
}

// treeCPU is the CPU time of a process, its live children and its reaped children: for the
// postmaster, that is the whole PostgreSQL cluster.
func treeCPU(root int) (time.Duration, error) {
	total, err := procCPU(root, true)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	ppid := strconv.Itoa(root)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := statFields(pid)
		if err != nil || f[1] != ppid {
			continue // gone, or not a child
		}
		if d, err := procCPU(pid, false); err == nil {
			total += d
		}
	}
	return total, nil
}

// memKB reads a "Vm…" line of /proc/<pid>/status, in KiB.
func memKB(pid int, field string) (int64, error) {
	return readKB(fmt.Sprintf("/proc/%d/status", pid), field)
}

// resetPeakRSS restarts VmHWM from the current RSS (Linux 4.0+), so that each scenario
// reports its own peak. It reports whether the kernel accepted it.
func resetPeakRSS(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// machineCPU is the whole machine's busy and total CPU time from /proc/stat.
type machineCPU struct{ busy, total time.Duration }

func readMachineCPU() (machineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return machineCPU{}, errors.New("/proc/stat: unexpected format")
	}
	var m machineCPU
	for i, s := range f[1:] {
		if i >= 8 { // guest time is already counted in user
			break
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return machineCPU{}, err
		}
		d := time.Duration(v) * time.Second / clockTicks
		m.total += d
		if i != 3 && i != 4 { // idle and iowait
			m.busy += d
		}
	}
	return m, nil
}

// machineInfo describes the box a run is on.
type machineInfo struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model"`
	MemoryMiB int64   `json:"memory_mib"`
	Kernel    string  `json:"kernel"`
	GoVersion string  `json:"go_version"`
	LoadAvg1  float64 `json:"load_avg_1m_at_start"`
}

func readMachineInfo() machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb, err := readKB("/proc/meminfo", "MemTotal"); err == nil {
		m.MemoryMiB = kb / 1024
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.LoadAvg1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return m
}

// readKB reads a "Field:   123 kB" line of a /proc file.
func readKB(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, field)
}
