//go:build linux

// Package supervisor is a project's one long-lived process: it owns what
// has no other owner (the DNS/DHCP/RA server, the forwarded host ports,
// the VMs' health checks, console logs and restart policies, the
// containers' member ports after a restart) and answers the CLI on a unix
// socket. api.go is its wire, client.go the CLI's side, server.go its
// own, spawn.go how up -d starts it detached.
package supervisor

import (
	"time"

	"github.com/foldup/foldup/dnsd"
)

// The supervisor is the one long-lived process of a project: it owns what
// has no other owner (the DNS/DHCP server now; the qemu processes, health
// checks and restart policies of VMs later) and answers the CLI on a unix
// socket under the run directory, mode 0600. `up -d` starts it detached;
// `up` in the foreground runs it in its own process. Its state is the plan
// and the lease file, both on disk, so a supervisor started again after a
// crash picks up where the last one was.

// Status is what the supervisor reports of itself.
type Status struct {
	Project string       `json:"project"`
	PID     int          `json:"pid"`
	Started time.Time    `json:"started"`
	DNS     []string     `json:"dns"`
	Leases  []dnsd.Lease `json:"leases"`
	Members []string     `json:"members"`
}
