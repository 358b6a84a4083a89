//go:build !linux

package main

import "syscall"

// childSysProcAttr returns no special attributes off Linux.
func childSysProcAttr() *syscall.SysProcAttr { return nil }

// kernelRelease is unknown off Linux.
func kernelRelease() string { return "" }
