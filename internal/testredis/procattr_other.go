//go:build !linux

package testredis

import "syscall"

// sysProcAttr returns nil off Linux, where no parent-death signal exists: a
// test binary killed outright leaves its server running there.
func sysProcAttr() *syscall.SysProcAttr { return nil }
