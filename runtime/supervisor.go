//go:build linux

package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/dnsd"
	"github.com/foldup/foldup/internal/crashhook"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/state"
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

type supervisor struct {
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

// Supervise runs the project's supervisor until ctx ends or a client asks
// it to stop. ready, if not nil, is called once it answers on its socket.
func Supervise(ctx context.Context, project string, opts Options, ready func()) error {
	o := opts.withDefaults()
	d := o.dirs(project)
	if err := d.Make(); err != nil {
		return err
	}
	host := o.Host
	if host == nil {
		h, err := network.OpenCurrent()
		if err != nil {
			return err
		}
		defer h.Close()
		host = h
	}
	s := &supervisor{project: project, dirs: d, host: host, log: o.Logger, started: time.Now(), docker: o.DockerHost, plans: newFileSignals()}
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
func (s *supervisor) reload() error {
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
func (s *supervisor) watchContainers(ctx context.Context) {
	reloaded := s.plans.subscribe("plan")
	for backoff := time.Second; ctx.Err() == nil; {
		s.mu.Lock()
		pl := s.plan
		s.mu.Unlock()
		if !hasContainers(pl) {
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

func (s *supervisor) followStarts(ctx context.Context) error {
	dc, err := containers.Dial(s.docker)
	if err != nil {
		return err
	}
	defer dc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := dc.Events(ctx, events.ListOptions{Filters: containers.ProjectFilter(s.project,
		filters.Arg("type", string(events.ContainerEventType)), filters.Arg("event", string(events.ActionStart)))})
	resync := func() error {
		s.mu.Lock()
		pl := s.plan
		s.mu.Unlock()
		return syncContainerPorts(ctx, dc, s.host, s.project, pl)
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
		case m := <-msgs:
			if err := resync(); err != nil {
				return err
			}
			s.log.Info("member ports synced", "container", m.Actor.Attributes["name"])
		}
	}
}

func sameNetwork(a, b dnsd.Network) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func (s *supervisor) status() Status {
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

func (s *supervisor) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dns != nil {
		s.dns.Close()
	}
	s.ports.close()
}

// supervisorClient talks to a project's supervisor.
type supervisorClient struct {
	d  state.Dirs
	hc *http.Client
}

func newSupervisorClient(d state.Dirs) *supervisorClient {
	return &supervisorClient{d: d, hc: &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.Socket())
		}},
	}}
}

func (c *supervisorClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://supervisor"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return fmt.Errorf("supervisor: %s", strings.TrimSpace(b.String()))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// Status asks the supervisor how it is; an error means none answers.
func (c *supervisorClient) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.do(ctx, http.MethodGet, "/status", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (c *supervisorClient) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/reload", nil)
}

// Stop asks the supervisor to stop and waits for its process to end; one
// that does not answer is killed by its pid file.
func (c *supervisorClient) Stop(ctx context.Context) error {
	pid := state.ReadPid(c.d.PidFile())
	err := c.do(ctx, http.MethodPost, "/stop", nil)
	if pid <= 0 || pid == os.Getpid() {
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	if err != nil {
		deadline = time.Now() // not answering: do not wait for it
	}
	for time.Now().Before(deadline) {
		if !state.Alive(pid) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if state.Alive(pid) && isSupervisor(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100 && state.Alive(pid); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	os.Remove(c.d.PidFile())
	os.Remove(c.d.Socket())
	return nil
}

// isSupervisor checks that pid is a foldup supervisor, so that a pid file
// left by a crash never makes foldup kill a process that reused the pid.
func isSupervisor(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return strings.Contains(string(b), "\x00supervise\x00")
}

// spawnSupervisor starts a detached supervisor (its own session, output to
// the project's supervisor.log) and waits until it answers.
func spawnSupervisor(ctx context.Context, o Options, project string) error {
	d := o.dirs(project)
	if len(o.SupervisorCommand) == 0 {
		return errors.New("no supervisor command: this program cannot start a detached supervisor")
	}
	logf, err := os.OpenFile(d.LogFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := append(slices.Clone(o.SupervisorCommand[1:]), "supervise", "--project-name", project,
		"--state-root", o.StateRoot, "--run-root", o.RunRoot)
	cmd := &exec.Cmd{
		Path:        o.SupervisorCommand[0],
		Args:        append([]string{"foldup"}, args...),
		Stdout:      logf,
		Stderr:      logf,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if o.DockerHost != "" {
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+o.DockerHost)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the supervisor: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c := newSupervisorClient(d)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Status(ctx); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the supervisor exited at start (%v); its log is %s:\n%s", err, d.LogFile(), tail(d.LogFile(), 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("the supervisor did not answer in 15 s; its log is %s", d.LogFile())
}

func tail(path string, lines int) string {
	b, _ := os.ReadFile(path)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
