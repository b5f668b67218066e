//go:build linux

package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/dnsd"
	"github.com/foldup/foldup/firewall"
	"github.com/foldup/foldup/internal/crashhook"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/state"
)

type server struct {
	project string
	dirs    state.Dirs
	host    *network.Host
	log     *slog.Logger
	started time.Time

	docker string // the Docker engine's address ("" for DOCKER_HOST or the default)

	// plans signals each reload ("plan"): followVMs looks at the plan's
	// VMs again, watchContainers at whether it has containers.
	plans *fileSignals

	mu    sync.Mutex
	plan  *planner.Plan
	dns   *dnsd.Server
	ports portHolders // the forwarded host ports, held
}

// Config is what a supervisor runs with.
type Config struct {
	Project string
	Dirs    state.Dirs
	// Host is the network namespace of the project's segment (nil: this
	// process's).
	Host   *network.Host
	Logger *slog.Logger // nil: discarded
	// DockerHost is the engine's address ("": DOCKER_HOST, else the
	// default socket).
	DockerHost string
}

// Run runs the project's supervisor until ctx ends or a client asks it to
// stop. ready, if not nil, is called once it answers on its socket.
func Run(ctx context.Context, c Config, ready func()) error {
	project, d := c.Project, c.Dirs
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if err := d.Make(); err != nil {
		return err
	}
	host := c.Host
	if host == nil {
		h, err := network.OpenCurrent()
		if err != nil {
			return err
		}
		defer h.Close()
		host = h
	}
	s := &server{project: project, dirs: d, host: host, log: c.Logger, started: time.Now(), docker: c.DockerHost, plans: newFileSignals()}
	if err := s.reload(); err != nil {
		return err
	}
	defer s.close()
	crashhook.Supervisor("dns")

	os.Remove(d.Socket()) // a dead supervisor's
	ln, err := net.Listen("unix", d.Socket())
	if err != nil {
		return fmt.Errorf("supervisor socket: %w", err)
	}
	if err := os.Chmod(d.Socket(), 0o600); err != nil {
		ln.Close()
		return err
	}
	defer os.Remove(d.Socket())
	if err := state.WriteFileAtomic(d.PidFile(), []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
		ln.Close()
		return err
	}
	defer os.Remove(d.PidFile())

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(s.status())
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.reload(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		stop()
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready()
	}
	crashhook.Supervisor("ready")
	s.log.Info("supervisor running", "project", project, "pid", os.Getpid())
	watching := make(chan struct{}, 2)
	go func() {
		defer func() { watching <- struct{}{} }()
		s.watchContainers(ctx)
	}()
	go func() {
		defer func() { watching <- struct{}{} }()
		s.followVMs(ctx)
	}()
	defer func() { stop(); <-watching; <-watching }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	s.log.Info("supervisor stopped", "project", project)
	return nil
}

// reload reads the plan again and brings the DNS/DHCP server to it:
// members and records at once, without a restart; a change of networks
// restarts the server on the new set.
func (s *server) reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.plans.signal("plan")
	p, err := state.LoadPlan(s.dirs.PlanFile())
	if err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("project %s has no plan in %s", s.project, s.dirs.State)
	}
	cfg := dnsd.FromPlan(p)
	s.ports.sync(s.host, p, s.log)
	if s.dns != nil && slices.EqualFunc(s.dns.Networks(), cfg.Networks, sameNetwork) {
		if err := s.dns.Update(cfg); err != nil {
			return err
		}
		s.plan = p
		return nil
	}
	if s.dns != nil {
		s.dns.Close()
		s.dns = nil
	}
	if len(cfg.Networks) > 0 {
		srv, err := dnsd.Start(cfg, dnsd.Options{Enter: s.host.Do, LeaseFile: s.dirs.LeaseFile(), Logger: s.log})
		if err != nil {
			return fmt.Errorf("starting the DNS/DHCP server: %w", err)
		}
		s.dns = srv
	}
	s.plan = p
	return nil
}

// watchContainers follows the engine's start events for the project's
// containers and brings the firewall's member ports to what runs after
// each: a container restarted by its restart policy, `foldup start` or
// `docker start` has a new veth, and anti-spoofing must hold it as it
// held the old one. It syncs once at every (re)connection too, so an
// event missed while the engine was away is not lost. A project without
// containers watches nothing.
func (s *server) watchContainers(ctx context.Context) {
	reloaded := s.plans.subscribe("plan")
	for backoff := time.Second; ctx.Err() == nil; {
		s.mu.Lock()
		pl := s.plan
		s.mu.Unlock()
		if !pl.HasContainers() {
			// A reload may bring containers: look again then.
			waitSignal(ctx, reloaded, 0)
			continue
		}
		err := s.followStarts(ctx)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("following the Docker engine's events", "err", err, "retry", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (s *server) followStarts(ctx context.Context) error {
	dc, err := containers.Dial(s.docker)
	if err != nil {
		return err
	}
	defer dc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := dc.Events(ctx, events.ListOptions{Filters: containers.ProjectFilter(s.project,
		filters.Arg("type", string(events.ContainerEventType)), filters.Arg("event", string(events.ActionStart)))})
	// And a container joined to one of the project's networks by hand:
	// the engine connects it (as it does the project's own, which the
	// first stream covers).
	s.mu.Lock()
	joins := filters.NewArgs(filters.Arg("type", string(events.NetworkEventType)), filters.Arg("event", string(events.ActionConnect)))
	for _, n := range s.plan.Networks {
		if !n.External {
			joins.Add("network", n.DockerName)
		}
	}
	s.mu.Unlock()
	var joined <-chan events.Message
	var joinErrs <-chan error
	if joins.Contains("network") { // else every network's connects would come
		joined, joinErrs = dc.Events(ctx, events.ListOptions{Filters: joins})
	}
	resync := func() error {
		s.mu.Lock()
		pl := s.plan
		s.mu.Unlock()
		if err := firewall.SyncContainers(ctx, dc, s.host, s.project, pl); err != nil {
			return err
		}
		// A container that starts again has a new veth: its netem too.
		return firewall.ApplyNetem(ctx, s.host, dc, pl, nil, nil)
	}
	if err := resync(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case err := <-joinErrs:
			return err
		case m := <-msgs:
			if err := resync(); err != nil {
				return err
			}
			s.log.Info("member ports synced", "container", m.Actor.Attributes["name"])
		case m := <-joined:
			// The project's own containers connect too, before they
			// run: their start is what counts (the other stream).
			// foldup run's are adopted as joined by hand (no member's).
			if c, err := dc.ContainerInspect(ctx, m.Actor.Attributes["container"]); err == nil && c.Config != nil &&
				c.Config.Labels[containers.LabelProject] == s.project && c.Config.Labels[containers.LabelOneOff] == "" {
				continue
			}
			if err := resync(); err != nil {
				return err
			}
			s.log.Info("ports synced: a container joined", "network", m.Actor.Attributes["name"], "container", m.Actor.Attributes["container"])
		}
	}
}

func sameNetwork(a, b dnsd.Network) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func (s *server) status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Project: s.project, PID: os.Getpid(), Started: s.started}
	if s.dns != nil {
		for _, a := range s.dns.DNSAddrs() {
			st.DNS = append(st.DNS, a.String())
		}
		st.Leases = s.dns.Leases()
	}
	for _, m := range s.plan.Members {
		st.Members = append(st.Members, m.Name)
	}
	return st
}

func (s *server) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dns != nil {
		s.dns.Close()
	}
	s.ports.close()
}
