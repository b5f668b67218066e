//go:build linux

package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/vm"
)

// ConsoleEscape is the byte that detaches from a VM's console: Ctrl-],
// as telnet and virsh console have it.
const ConsoleEscape = 0x1d

// Console attaches in and out to a running VM's serial console, until in
// sends ConsoleEscape or ends, ctx ends, or the VM stops. When in ends
// (a script's input), Console waits for the guest to go quiet before it
// returns, so that its answer is not cut off: the console takes typed
// bytes only as fast as the guest's UART drains them. qemu serves one
// client at a time; a second one waits for the first to detach.
func (x *Executor) Console(ctx context.Context, project, member string, in io.Reader, out io.Writer) error {
	o := x.o
	d := o.dirs(project)
	plan, err := state.LoadPlan(d.PlanFile())
	if err != nil {
		return err
	}
	if plan == nil {
		return fmt.Errorf("project %s is not up here (no plan in %s)", project, d.State)
	}
	var m *planner.Member
	for _, pm := range plan.Members {
		if pm.Name == member || pm.Service == member {
			m = pm
			break
		}
	}
	switch {
	case m == nil:
		return fmt.Errorf("project %s has no VM %q", project, member)
	case m.Kind != planner.VM:
		return fmt.Errorf("%s is a container, which has no serial console: use `foldup exec %s sh`", member, m.Service)
	}
	f := vm.For(d, m.Name)
	if vm.Running(f) == 0 {
		return fmt.Errorf("vm %s is not running", m.Name)
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", f.Console())
	if err != nil {
		return fmt.Errorf("vm %s's console: %w", m.Name, err)
	}
	defer conn.Close()

	var lastOutput atomic.Int64 // unix nanoseconds
	lastOutput.Store(time.Now().UnixNano())
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		buf := make([]byte, 32<<10)
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				lastOutput.Store(time.Now().UnixNano())
				out.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()

	input := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := in.Read(buf)
			if i := bytes.IndexByte(buf[:n], ConsoleEscape); i >= 0 {
				conn.Write(buf[:i])
				input <- nil
				return
			}
			if n > 0 {
				if _, werr := conn.Write(buf[:n]); werr != nil {
					input <- werr
					return
				}
			}
			if err != nil {
				input <- err
				return
			}
		}
	}()

	select {
	case <-ctx.Done():
		return nil
	case <-closed:
		return fmt.Errorf("vm %s's console closed (the VM stopped)", m.Name)
	case err := <-input:
		if err == nil { // the escape
			return nil
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
	}
	// In ended: wait for a second of quiet, ten at most.
	const quiet = time.Second
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if since := time.Since(time.Unix(0, lastOutput.Load())); since >= quiet {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-closed:
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
