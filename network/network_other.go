//go:build !linux

// Package network is Linux only; elsewhere every operation fails with
// ErrNotImplemented.
package network

import "errors"

// ErrNotImplemented is returned on systems without Linux networking.
var ErrNotImplemented = errors.New("network: not implemented on this system")
