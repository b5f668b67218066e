//go:build !linux

package main

import (
	"context"
	"io"

	"github.com/foldup/foldup/spec"
)

// accelWarnings: qemu's accelerators are decided on Linux only.
func accelWarnings(context.Context, *spec.Project, io.Writer) error { return nil }
