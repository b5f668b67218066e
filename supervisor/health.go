//go:build linux

package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/vm"
)

// The supervisor probes each running VM that has a health check, from the
// host side of the segment, and writes the result where ps and up --wait
// and depends_on read it. The states are Docker's: starting until the
// first success (failures within start_period do not count), healthy,
// and unhealthy after `retries` failures in a row.

// followVMs runs, until ctx ends, for each of the plan's VMs: a health
// checker, a watcher (its restart policy; see watchVM) and the keeper of
// its console log (time stamps, rotation; see keepConsole). A VM that
// leaves the plan has its followers stopped, and waited for, as all are
// when followVMs returns.
func (s *server) followVMs(ctx context.Context) {
	type followers struct {
		stop context.CancelFunc
		wg   sync.WaitGroup
	}
	reloaded := s.plans.subscribe("plan")
	running := map[string]*followers{} // by member
	defer func() {
		for _, fl := range running {
			fl.stop()
		}
		for _, fl := range running {
			fl.wg.Wait()
		}
	}()
	for {
		s.mu.Lock()
		pl := s.plan
		s.mu.Unlock()
		want := map[string]bool{}
		for _, m := range pl.Members {
			if m.Kind != planner.VM {
				continue
			}
			want[m.Name] = true
			if running[m.Name] != nil {
				continue
			}
			cctx, stop := context.WithCancel(ctx)
			fl := &followers{stop: stop}
			running[m.Name] = fl
			// The VM's files signal their changes: no follower polls
			// them.
			f := vm.For(s.dirs, m.Name)
			sig := newFileSignals()
			health, watch, console := sig.subscribe("vm.json"), sig.subscribe("vm.json"), sig.subscribe("console.log")
			fl.wg.Go(func() { sig.run(cctx, f.State, time.Second) })
			fl.wg.Go(func() { s.checkVM(cctx, m.Name, health) })
			fl.wg.Go(func() { s.watchVM(cctx, m.Name, watch) })
			fl.wg.Go(func() {
				keepConsole(cctx, f, console, func(msg string, args ...any) { s.log.Warn(msg, append(args, "vm", m.Name)...) })
			})
		}
		for name, fl := range running {
			if !want[name] {
				fl.stop()
				fl.wg.Wait()
				delete(running, name)
			}
		}
		if !waitSignal(ctx, reloaded, 0) {
			return
		}
	}
}

// checkVM probes one VM for as long as ctx lasts. A new qemu (the VM
// recreated or restarted: another pid) starts the count again.
func (s *server) checkVM(ctx context.Context, name string, recChanged <-chan struct{}) {
	f := vm.For(s.dirs, name)
	var (
		pid     int
		h       vm.Health
		started time.Time
		seen    string // a serial check's match: the console said it once this boot
	)
	for {
		var wait time.Duration // nothing to probe: until the record changes
		rec, err := vm.ReadRecord(f)
		if err == nil && rec.Health != nil && !rec.Health.Disable && len(rec.Health.Test) == 2 && vm.Running(f) == rec.PID {
			hc := rec.Health
			if rec.PID != pid {
				pid, started = rec.PID, rec.Started
				h = vm.Health{Status: "starting"}
				seen = ""
			}
			interval := time.Duration(hc.Interval)
			if interval <= 0 {
				interval = spec.DefaultInterval
			}
			timeout := time.Duration(hc.Timeout)
			if timeout <= 0 {
				timeout = spec.DefaultTimeout
			}
			retries := hc.Retries
			if retries <= 0 {
				retries = spec.DefaultRetries
			}
			var result string
			if seen != "" {
				result, err = seen, nil
			} else {
				s.host.Do(func() error {
					result, err = probe(ctx, hc.Test[0], hc.Test[1], rec.Addrs, console{f.ConsoleLog(), rec.ConsoleOffset}, timeout)
					return nil
				})
				if err == nil && hc.Test[0] == spec.CheckSerial {
					seen = result
				}
			}
			h.Observe(result, err, time.Since(started) < time.Duration(hc.StartPeriod), retries)
			b, _ := json.Marshal(h)
			state.WriteFileAtomic(f.HealthFile(), b)
			wait = interval
		}
		if !waitSignal(ctx, recChanged, wait) {
			return
		}
	}
}

// probe runs one health check against a VM.
// console is the part of a console log a serial check reads: from where
// the VM's current boot began (all of it if the log was rotated since).
type console struct {
	path string
	from int64
}

func probe(ctx context.Context, kind, arg string, addrs []netip.Addr, con console, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The first IPv4 address, else the first one.
	var addr netip.Addr
	if i := slices.IndexFunc(addrs, netip.Addr.Is4); i >= 0 {
		addr = addrs[i]
	} else if len(addrs) > 0 {
		addr = addrs[0]
	}
	switch kind {
	case spec.CheckTCP:
		if !addr.IsValid() {
			return "", fmt.Errorf("no address to probe")
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addr.String(), arg))
		if err != nil {
			return "", err
		}
		c.Close()
		return "tcp " + arg + " open", nil
	case spec.CheckHTTP:
		if !addr.IsValid() {
			return "", fmt.Errorf("no address to probe")
		}
		port, path, _ := strings.Cut(arg, "/")
		if port == "" {
			port = "80"
		}
		if _, err := strconv.Atoi(port); err != nil {
			return "", fmt.Errorf("bad http check %q", arg)
		}
		// The request goes over a connection dialled here, in the
		// segment's namespace (the caller's thread), not by a transport's
		// goroutine.
		hostport := net.JoinHostPort(addr.String(), port)
		url := "http://" + hostport + "/" + path
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", hostport)
		if err != nil {
			return "", err
		}
		defer c.Close()
		if dl, ok := ctx.Deadline(); ok {
			c.SetDeadline(dl)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", err
		}
		req.Close = true
		if err := req.Write(c); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return "", fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return "GET " + url + ": " + resp.Status, nil
	case spec.CheckSerial:
		re, err := regexp.Compile(arg)
		if err != nil {
			return "", err
		}
		b, err := os.ReadFile(con.path)
		if err != nil {
			return "", err
		}
		if int64(len(b)) >= con.from {
			b = b[con.from:]
		}
		if m := re.Find(b); m != nil {
			return "console: " + string(m), nil
		}
		return "", fmt.Errorf("console has no match for %q yet", arg)
	}
	return "", fmt.Errorf("unknown health check %q", kind)
}
