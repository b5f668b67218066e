package main

import (
	"context"
	"fmt"
	"io"

	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/vm"
)

// accelWarnings says, as up will, which accelerator the VMs cannot have
// and why: a warning when they fall back to TCG, an error when one must
// have KVM.
func accelWarnings(ctx context.Context, p *spec.Project, stderr io.Writer) error {
	if len(p.VMs) == 0 {
		return nil
	}
	_, warnings, err := vm.Accelerators(ctx, p, p.VMNames(), "")
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning: "+w.String())
	}
	return err
}
