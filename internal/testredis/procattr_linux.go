package testredis

import "syscall"

// sysProcAttr makes the kernel kill the server when the test binary dies, even
// by SIGKILL (a `go test -timeout` panic, an OOM kill), which Main's cleanup
// never sees. The server gets its own process group, so a Ctrl-C aimed at
// `go test` reaches the test binary, whose death then takes the server along.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
