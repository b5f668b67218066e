//go:build linux

package executor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
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

// execConsole runs a command through a VM's serial console, for a guest
// with a shell there and no way in over SSH (a kernel and initrd): it
// types the command between two markers and reads what comes between
// them, and the exit status after the second. The output is stdout and
// stderr together, as a terminal shows them; nothing is read from opts'
// Stdin. A guest whose console has no shell at a prompt fails after ten
// seconds with what it needs.
func (x *Executor) execConsole(ctx context.Context, d state.Dirs, m *planner.Member, cmd []string, opts ExecOptions) (int, error) {
	f := vm.For(d, m.Name)
	if vm.Running(f) == 0 {
		return -1, fmt.Errorf("vm %s is not running", m.Name)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := (&net.Dialer{}).DialContext(dctx, "unix", f.Console())
	cancel()
	if err != nil {
		return -1, fmt.Errorf("vm %s's console: %w", m.Name, err)
	}
	defer conn.Close()
	tok := make([]byte, 6)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	line := shellLine(cmd, opts)
	if opts.Detach {
		line = "(" + line + ") >/dev/null 2>&1 </dev/null &"
	}
	// The markers are typed split ("FX""S-"), so the terminal's echo of
	// the line does not hold them as the shell prints them.
	start, end := "FXS-"+token, "FXE-"+token+" "
	script := fmt.Sprintf("\x15echo \"FX\"\"S-%s\"; %s; echo \"FX\"\"E-%s $?\"\n", token, line, token)
	if _, err := conn.Write([]byte(script)); err != nil {
		return -1, err
	}
	var buf bytes.Buffer
	chunk := make([]byte, 32<<10)
	started := false
	deadline := time.Now().Add(10 * time.Second)
	for {
		if !started {
			conn.SetReadDeadline(deadline)
		} else {
			conn.SetReadDeadline(time.Now().Add(time.Second))
		}
		n, err := conn.Read(chunk)
		buf.Write(bytes.ReplaceAll(chunk[:n], []byte("\r"), nil))
		text := buf.String()
		if !started {
			if i := strings.Index(text, "\n"+start+"\n"); i >= 0 {
				started = true
				buf.Reset()
				buf.WriteString(text[i+len(start)+2:])
				text = buf.String()
			}
		}
		if started {
			if i := strings.Index(text, end); i >= 0 && (i == 0 || text[i-1] == '\n') {
				rest := text[i+len(end):]
				if j := strings.IndexByte(rest, '\n'); j >= 0 {
					code, perr := strconv.Atoi(strings.TrimSpace(rest[:j]))
					if perr != nil {
						return -1, fmt.Errorf("vm %s: exit status %q on the console", m.Name, rest[:j])
					}
					if opts.Stdout != nil {
						opts.Stdout.Write([]byte(text[:i]))
					}
					return code, nil
				}
			}
		}
		if err != nil {
			var ne net.Error
			switch {
			case ctx.Err() != nil:
				return -1, ctx.Err()
			case errors.As(err, &ne) && ne.Timeout() && !started:
				return -1, fmt.Errorf("%w; no shell answered on its serial console in 10 seconds", noWayIn(m.Name))
			case errors.As(err, &ne) && ne.Timeout():
				continue // a command that prints nothing for a while
			}
			return -1, fmt.Errorf("vm %s's console: %w", m.Name, err)
		}
	}
}
