//go:build linux

package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
)

// A forwarded host port is the project's as a listening socket is a
// program's: foldup's DNAT takes the port's traffic whatever else listens
// there, so up refuses a port something on the host already holds (as
// docker compose does: "address already in use"), and the supervisor
// holds each one with a socket of its own while the project is up (as
// Docker's proxy does), so that nothing takes it later and `ss -ltnp`
// names who has it.

// hostPort is one host port a plan forwards.
type hostPort struct {
	addr   string // the address to bind: "" for all of the host's
	port   uint16
	proto  string
	member *planner.Member
}

func (h hostPort) String() string { return fmt.Sprintf("%d/%s", h.port, h.proto) }

// bindAddr is where a socket holding h binds: h's host address, or every
// address (IPv4 and IPv6, one dual-stack socket).
func (h hostPort) bindAddr() string {
	return net.JoinHostPort(h.addr, strconv.Itoa(int(h.port)))
}

// hostPorts lists the host ports pl forwards, each once.
func hostPorts(pl *planner.Plan) []hostPort {
	var out []hostPort
	for _, m := range pl.Members {
		for _, pt := range m.Ports {
			addr := pt.HostIP
			if a, err := netip.ParseAddr(addr); err == nil && a.IsUnspecified() {
				addr = ""
			}
			h := hostPort{addr: addr, port: pt.HostPort, proto: pt.Protocol, member: m}
			if !slices.ContainsFunc(out, func(o hostPort) bool { return o.addr == h.addr && o.port == h.port && o.proto == h.proto }) {
				out = append(out, h)
			}
		}
	}
	return out
}

// listen binds h in the calling thread's network namespace: a TCP
// listener, or a UDP socket.
func (h hostPort) listen() (io.Closer, error) {
	if h.proto == "udp" {
		return net.ListenPacket("udp", h.bindAddr())
	}
	return net.Listen("tcp", h.bindAddr())
}

// CheckHostPorts fails, with the place in the file, for each host port
// pl forwards that something other than this project holds on the host
// (the namespace host is for). ours are pids that may hold them: the
// project's supervisor.
func CheckHostPorts(host *network.Host, p *spec.Project, pl *planner.Plan, ours ...int) error {
	var errs spec.ErrorList
	err := host.Do(func() error {
		for _, h := range hostPorts(pl) {
			c, err := h.listen()
			if err == nil {
				c.Close()
				continue
			}
			if !errors.Is(err, syscall.EADDRINUSE) {
				return err
			}
			pid, comm := portHolder(h)
			if pid != 0 && slices.Contains(ours, pid) {
				continue
			}
			who := ""
			if pid != 0 {
				who = fmt.Sprintf(" (pid %d, %s)", pid, comm)
			}
			kind, path := "services", []string{"services", h.member.Service, "ports"}
			if h.member.Kind == planner.VM {
				kind, path = "vms", []string{"vms", h.member.Service, "ports"}
			}
			errs.Add(p.Locate(path...), kind+"."+h.member.Service+".ports", "host port %s is in use on this host%s", h, who)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return errs.Err()
}

// portHolder finds the process holding h, from the calling thread's
// network namespace's socket tables: its pid and command, or 0.
func portHolder(h hostPort) (int, string) {
	files := []string{"tcp", "tcp6"}
	state := "0A" // LISTEN
	if h.proto == "udp" {
		files, state = []string{"udp", "udp6"}, "07"
	}
	inodes := map[string]bool{}
	for _, f := range files {
		fh, err := os.Open("/proc/thread-self/net/" + f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != state {
				continue
			}
			_, port, ok := strings.Cut(fs[1], ":")
			if n, err := strconv.ParseUint(port, 16, 16); ok && err == nil && uint16(n) == h.port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return 0, ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		if l, err := os.Readlink(fd); err == nil && inodes[l] {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			return pid, strings.TrimSpace(string(comm))
		}
	}
	return 0, ""
}

// portHolders are the supervisor's sockets on the project's forwarded
// host ports.
type portHolders struct {
	held map[string]io.Closer // by address/protocol
}

// sync holds every host port pl forwards and lets go of the others.
// A port it cannot take is logged: up checked it was free, so another
// program took it since.
func (ph *portHolders) sync(host *network.Host, pl *planner.Plan, log *slog.Logger) {
	if ph.held == nil {
		ph.held = map[string]io.Closer{}
	}
	want := map[string]hostPort{}
	for _, h := range hostPorts(pl) {
		want[h.bindAddr()+"/"+h.proto] = h
	}
	for k, c := range ph.held {
		if _, ok := want[k]; !ok {
			c.Close()
			delete(ph.held, k)
		}
	}
	host.Do(func() error {
		for k, h := range want {
			if ph.held[k] != nil {
				continue
			}
			c, err := h.listen()
			if err != nil {
				log.Warn("cannot hold a forwarded host port", "port", h.String(), "address", h.addr, "err", err)
				continue
			}
			if ln, ok := c.(net.Listener); ok {
				go refuse(ln)
			}
			ph.held[k] = c
		}
		return nil
	})
}

// refuse closes every connection a holding listener accepts: foldup's
// DNAT sends the port's traffic to the member before it reaches the
// socket, so only what the DNAT does not cover (another family) lands
// here, and is told no at once rather than left waiting.
func refuse(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func (ph *portHolders) close() {
	for k, c := range ph.held {
		c.Close()
		delete(ph.held, k)
	}
}
