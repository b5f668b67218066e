package planner

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/foldup/foldup/spec"
)

// Kind is what a step makes or does. The executor is a switch over kinds:
// every choice (what to make, recreate, start or leave, in what order) is
// the plan's.
type Kind string

// Step kinds.
const (
	// The images, fetched before anything is made: one that cannot be
	// pulled, built or downloaded stops up with nothing changed.
	KindImage   Kind = "image"    // a service's image, pulled or built (Name: service)
	KindVMImage Kind = "vm-image" // a VM's image, downloaded into the cache (Name: VM service)

	KindNetwork      Kind = "network"       // the bridge, then the engine's network on it (Name: network)
	KindFirewall     Kind = "firewall"      // the project's nftables tables (Name: project)
	KindDockerAccept Kind = "docker-accept" // a bridge's accept in Docker's DOCKER-USER chain (Name: network)
	KindSupervisor   Kind = "supervisor"    // the DNS/DHCP/RA server, VM health checks and restarts (Name: project)

	KindWait      Kind = "wait"      // until Name meets Condition, for Member (a depends_on entry)
	KindVolume    Kind = "volume"    // a named volume, made unless it exists (Name: its key in the file)
	KindContainer Kind = "container" // one container (Name: member)
	KindPorts     Kind = "ports"     // a container up leaves alone: its veths stay in the firewall (Name: member)
	KindVMStop    Kind = "vm-stop"   // a running VM's qemu, stopped to be recreated (Name: member)
	KindTap       Kind = "tap"       // a VM's tap on its bridge (Name: tap, Member: VM)
	KindOverlay   Kind = "overlay"   // a VM's disk, a qcow2 overlay on its image, made once (Name: member)
	KindSeed      Kind = "seed"      // a VM's cloud-init seed ISO (Name: member)
	KindQemu      Kind = "qemu"      // a VM's qemu (Name: member)

	KindOrphan Kind = "orphan" // a container of a service the file no longer has (Name: container)
	KindReady  Kind = "ready"  // up --wait: until Name runs, and is healthy if it has a check
)

// Step actions.
const (
	ActionCreate   = "Create"
	ActionRecreate = "Recreate"
	ActionStart    = "Start"
	ActionNone     = "None"     // it is as planned: reported, not touched
	ActionReload   = "Reload"   // the supervisor runs: it reads the plan again
	ActionApply    = "Apply"    // made to match, whatever is there
	ActionEnsure   = "Ensure"   // made unless it exists
	ActionBuild    = "Build"    // an image, built again (--build)
	ActionDownload = "Download" // a VM image, unless the cache has it
	ActionStop     = "Stop"
	ActionWait     = "Wait"
	ActionRemove   = "Remove"
)

// Step is one node of the plan's graph. A step starts once every step in
// Deps is done.
type Step struct {
	ID   int   `json:"id"`
	Deps []int `json:"deps"`
	Kind Kind  `json:"kind"`
	// Name is what the step acts on: a network, member, tap, volume,
	// service or container, as its kind says.
	Name string `json:"name"`
	// Member is the member the step is part of, when Name is not it.
	Member string `json:"member,omitempty"`
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
	// Condition and Required are a wait's depends_on entry.
	Condition string `json:"condition,omitempty"`
	Required  bool   `json:"required,omitempty"`
	// Detail is what the step makes, in words, for `foldup plan`.
	Detail string `json:"detail,omitempty"`
}

// Prepare says whether the step runs before the graph: the images.
func (s *Step) Prepare() bool { return s.Kind == KindImage || s.Kind == KindVMImage }

// Intent is what the user asks of up beyond the file: up's arguments and
// flags.
type Intent struct {
	// Services limits up to these services, VMs or members and what they
	// depend on; the others are left as they are. Empty: all.
	Services      []string
	Build         bool // build images again, and recreate their containers
	ForceRecreate bool // recreate members whose configuration did not change
	RemoveOrphans bool // remove containers of services the file no longer has
	Wait          bool // wait until every member runs, healthy if it has a check
	// NoDeps leaves what Services depend on alone (up --no-deps).
	NoDeps bool
	// NoRecreate starts what exists as it is, changed or not (up
	// --no-recreate); AlwaysRecreateDeps recreates every member another
	// depends on (up --always-recreate-deps).
	NoRecreate, AlwaysRecreateDeps bool
	// SegmentOnly, with no Services, makes the networks, the firewall
	// and the supervisor, and no member (foldup run of a service that
	// depends on nothing).
	SegmentOnly bool
}

// selected returns the members up acts on: all, or the named ones and
// everything they depend on.
func (pl *planner) selected() map[string]bool {
	out := map[string]bool{}
	byName := map[string]*Member{}
	for _, m := range pl.plan.Members {
		byName[m.Name] = m
	}
	var visit func(m *Member)
	visit = func(m *Member) {
		if out[m.Name] {
			return
		}
		out[m.Name] = true
		if pl.in.NoDeps && len(pl.in.Services) > 0 {
			return
		}
		for _, d := range m.DependsOn {
			if dm := byName[d.Member]; dm != nil {
				visit(dm)
			}
		}
	}
	for _, m := range pl.plan.Members {
		if (len(pl.in.Services) == 0 && !pl.in.SegmentOnly) || slices.Contains(pl.in.Services, m.Service) || slices.Contains(pl.in.Services, m.Name) {
			visit(m)
		}
	}
	return out
}

// stepList appends steps, numbering them.
type stepList struct{ plan *Plan }

func (sl stepList) add(s Step, deps ...int) int {
	s.ID = len(sl.plan.Steps) + 1
	s.Deps = slices.Compact(slices.Sorted(slices.Values(slices.DeleteFunc(deps, func(d int) bool { return d == 0 }))))
	if s.Deps == nil {
		s.Deps = []int{}
	}
	sl.plan.Steps = append(sl.plan.Steps, &s)
	return s.ID
}

// steps builds the graph: the images, then the networks, the firewall
// and the supervisor, then each member's steps in dependency order, then
// what comes after (orphans, --wait). IDs follow a topological order
// (every step's dependencies have smaller IDs), ties broken by name.
func (pl *planner) steps() {
	if pl.cycles() {
		return
	}
	pl.edges()
	pl.matchObserved() // after edges, which names the containers
	g := &graph{pl: pl, sl: stepList{pl.plan}, order: pl.plan.Ordered(), selected: pl.selected(),
		actions: map[string][2]string{}, netStep: map[string]int{}, vmImages: map[string]int{},
		last: map[string]int{}, volumes: map[string]int{}}
	for _, m := range pl.plan.Members {
		a, r := pl.memberAction(m)
		g.actions[m.Name] = [2]string{a, r}
	}
	g.images()
	g.segment()
	for _, m := range g.order {
		switch {
		case !g.selected[m.Name]:
			g.unselected(m)
		case m.Kind == Container:
			g.container(m, g.waits(m))
		default:
			g.vm(m, g.waits(m))
		}
	}
	g.after()
}

// graph is the steps being built, and what later steps need of earlier
// ones.
type graph struct {
	pl       *planner
	sl       stepList
	order    []*Member            // dependency order
	selected map[string]bool      // the members up acts on
	actions  map[string][2]string // each member's action and reason
	netStep  map[string]int       // each network's step
	vmImages map[string]int       // each downloaded VM image's step
	supID    int                  // the supervisor's step
	last     map[string]int       // each member's last step
	volumes  map[string]int       // each named volume's step
}

// images adds the images up pulls, builds or downloads: those of the
// selected members it makes, or all with --build.
func (g *graph) images() {
	pl := g.pl
	services := map[string]bool{}
	for _, m := range pl.plan.Members {
		if !g.selected[m.Name] {
			continue
		}
		a := g.actions[m.Name][0]
		switch m.Kind {
		case Container:
			if a == ActionCreate || a == ActionRecreate || pl.in.Build {
				services[m.Service] = true
			}
		case VM:
			if v := pl.p.VMs[m.Service]; a != ActionNone && spec.IsURL(v.Image) {
				g.vmImages[m.Service] = 0
			}
		}
	}
	for _, svc := range slices.Sorted(maps.Keys(services)) {
		g.sl.add(pl.imageStep(svc))
	}
	for _, svc := range slices.Sorted(maps.Keys(g.vmImages)) {
		v := pl.p.VMs[svc]
		detail := v.Image
		if v.SHA256 != "" {
			detail += ", sha256 " + v.SHA256
		}
		g.vmImages[svc] = g.sl.add(Step{Kind: KindVMImage, Name: svc, Action: ActionDownload, Reason: "a URL", Detail: detail})
	}
}

// segment adds the networks, the firewall, Docker's accepts and the
// supervisor.
func (g *graph) segment() {
	pl, plan := g.pl, g.pl.plan
	hasEngine := len(pl.p.Compose.Services) > 0
	var nets []int
	for _, n := range plan.Networks {
		if n.External {
			continue
		}
		action, reason := ActionCreate, "not found"
		if pl.obs.Networks[n.Name] {
			action, reason = ActionNone, "exists"
		}
		detail := n.detail()
		if hasEngine {
			detail += ", engine network " + n.DockerName
		}
		g.netStep[n.Name] = g.sl.add(Step{Kind: KindNetwork, Name: n.Name, Action: action, Reason: reason, Detail: detail})
		nets = append(nets, g.netStep[n.Name])
	}
	if len(nets) == 0 {
		return
	}
	fw := g.sl.add(Step{Kind: KindFirewall, Name: plan.Project, Action: ActionApply, Detail: pl.firewallDetail()}, nets...)
	after := []int{fw}
	for _, n := range plan.Networks {
		if !n.External {
			after = append(after, g.sl.add(Step{Kind: KindDockerAccept, Name: n.Name, Action: ActionApply,
				Detail: "bridge " + n.Bridge + " past Docker's FORWARD policy"}, g.netStep[n.Name]))
		}
	}
	action, reason := ActionStart, "not running"
	if pl.obs.DNSRunning {
		action, reason = ActionReload, "running"
	}
	g.supID = g.sl.add(Step{Kind: KindSupervisor, Name: plan.Project, Action: action, Reason: reason, Detail: plan.dnsDetail()}, after...)
}

// nets returns the steps of m's networks.
func (g *graph) nets(m *Member) []int {
	var out []int
	for _, nic := range m.NICs {
		out = append(out, g.netStep[nic.Network])
	}
	return out
}

// unselected adds what up does for a member it leaves alone: a
// container's ports stay in the firewall.
func (g *graph) unselected(m *Member) {
	if m.Kind == Container {
		g.last[m.Name] = g.sl.add(Step{Kind: KindPorts, Name: m.Name, Action: ActionApply, Reason: "not selected",
			Detail: "its veths into the firewall's member ports, if it exists"}, append(g.nets(m), g.supID)...)
	}
}

// waits adds a wait for each of m's depends_on entries.
func (g *graph) waits(m *Member) []int {
	var out []int
	for _, d := range m.DependsOn {
		out = append(out, g.sl.add(Step{Kind: KindWait, Name: d.Member, Member: m.Name, Action: ActionWait,
			Reason: "a dependency of " + m.Name, Condition: d.Condition, Required: d.Required,
			Detail: strings.TrimPrefix(d.Condition, "service_") + requiredWord(d.Required)}, g.last[d.Member]))
	}
	return out
}

// container adds a container's named volumes and the container.
func (g *graph) container(m *Member, waits []int) {
	action, reason := g.actions[m.Name][0], g.actions[m.Name][1]
	deps := append(waits, g.nets(m)...)
	if len(m.NICs) > 0 {
		// A container may look a name up as soon as it runs: it waits
		// for the DNS server.
		deps = append(deps, g.supID)
	}
	if action == ActionCreate || action == ActionRecreate {
		for _, key := range g.pl.namedVolumes(m.Service) {
			if _, ok := g.volumes[key]; !ok {
				g.volumes[key] = g.sl.add(Step{Kind: KindVolume, Name: key, Action: ActionEnsure, Detail: VolumeName(g.pl.p, key)})
			}
			deps = append(deps, g.volumes[key])
		}
	}
	g.last[m.Name] = g.sl.add(Step{Kind: KindContainer, Name: m.Name, Action: action, Reason: reason, Detail: m.Container + ": " + m.detail()}, deps...)
}

// vm adds a VM's steps: its qemu stopped (to recreate a running one),
// its taps, disk and seed, and its qemu.
//
// A VM's DHCP client asks seconds after qemu starts (firmware and kernel
// come first; ~2.5 s under TCG, ~0.3 s for a fast guest under KVM,
// against ~0.1 s for the server to start), and asks again if unanswered:
// its qemu starts while the supervisor does, not after it.
func (g *graph) vm(m *Member, waits []int) {
	action, reason := g.actions[m.Name][0], g.actions[m.Name][1]
	if action == ActionNone {
		g.last[m.Name] = g.sl.add(Step{Kind: KindQemu, Name: m.Name, Action: action, Reason: reason, Detail: m.detail()}, append(waits, g.nets(m)...)...)
		return
	}
	base := waits
	if action == ActionRecreate && g.pl.obs.Members[m.Name].Running {
		base = []int{g.sl.add(Step{Kind: KindVMStop, Name: m.Name, Action: ActionStop, Reason: reason, Detail: "ACPI powerdown, then quit"}, waits...)}
	}
	qemuDeps := slices.Clone(base)
	for _, nic := range m.NICs {
		n := g.pl.plan.Network(nic.Network)
		qemuDeps = append(qemuDeps, g.sl.add(Step{Kind: KindTap, Name: nic.Tap, Member: m.Name, Action: ActionEnsure,
			Detail: "on bridge " + n.Bridge + ", " + nic.MAC}, append(slices.Clone(base), g.netStep[nic.Network])...))
	}
	v := g.pl.p.VMs[m.Service]
	if v.Image != "" {
		detail := "disk.qcow2 over " + v.Image
		if v.Arch == "aarch64" && v.Kernel == "" {
			detail += ", and a copy of the UEFI variable store"
		}
		qemuDeps = append(qemuDeps, g.sl.add(Step{Kind: KindOverlay, Name: m.Name, Action: ActionEnsure, Detail: detail},
			append(slices.Clone(base), g.vmImages[m.Service])...))
	}
	if ci := v.CloudInit; ci != nil && ci.ISO == "" {
		qemuDeps = append(qemuDeps, g.sl.add(Step{Kind: KindSeed, Name: m.Name, Action: ActionCreate, Detail: "cloud-init NoCloud seed.iso"}, base...))
	}
	g.last[m.Name] = g.sl.add(Step{Kind: KindQemu, Name: m.Name, Action: action, Reason: reason, Detail: m.detail()}, qemuDeps...)
}

// after adds what comes once every member is done: the orphans removed
// (--remove-orphans) or named, and the waits of --wait.
func (g *graph) after() {
	pl, plan := g.pl, g.pl.plan
	var members []int
	for _, m := range g.order {
		members = append(members, g.last[m.Name])
	}
	var orphans []int
	for _, name := range slices.Sorted(maps.Keys(pl.obs.Members)) {
		st := pl.obs.Members[name]
		if st.Kind != Container || pl.members[name] != nil {
			continue
		}
		if !pl.in.RemoveOrphans {
			plan.Orphans = append(plan.Orphans, st.Container)
			continue
		}
		orphans = append(orphans, g.sl.add(Step{Kind: KindOrphan, Name: st.Container, Member: name, Action: ActionRemove,
			Reason: "not in the file (--remove-orphans)"}, members...))
	}
	slices.Sort(plan.Orphans)
	if !pl.in.Wait {
		return
	}
	for _, m := range g.order {
		if g.selected[m.Name] {
			g.sl.add(Step{Kind: KindReady, Name: m.Name, Action: ActionWait, Reason: "--wait", Detail: "running, and healthy if it has a check"},
				append(slices.Clone(orphans), g.last[m.Name])...)
		}
	}
}

func requiredWord(required bool) string {
	if required {
		return ""
	}
	return ", not required"
}

// edges fills each member's DependsOn: an edge to every replica of what
// its service or VM depends on.
func (pl *planner) edges() {
	byService := map[string][]*Member{}
	for _, m := range pl.plan.Members {
		byService[m.Service] = append(byService[m.Service], m)
	}
	for _, m := range pl.plan.Members {
		if m.Kind == Container {
			m.Container = ContainerName(pl.p, m)
		}
		section := "services"
		if m.Kind == VM {
			section = "vms"
		}
		deps := pl.deps(section, m.Service)
		for _, t := range slices.Sorted(maps.Keys(deps)) {
			if _, ok := pl.nodeOf(t); !ok {
				continue
			}
			for _, tm := range byService[t] {
				m.DependsOn = append(m.DependsOn, Dependency{Member: tm.Name, Condition: deps[t].Condition, Required: deps[t].Required})
			}
		}
	}
}

// Ordered returns the members in dependency order, every member after
// those it depends on, ties broken by name (Kahn's algorithm).
func (p *Plan) Ordered() []*Member {
	var order []*Member
	done := map[string]bool{}
	for len(order) < len(p.Members) {
		progressed := false
		for _, m := range p.Members {
			if done[m.Name] || slices.ContainsFunc(m.DependsOn, func(d Dependency) bool { return !done[d.Member] }) {
				continue
			}
			order = append(order, m)
			done[m.Name] = true
			progressed = true
			break // again from the smallest name
		}
		if !progressed {
			// A cycle: the planner reports them, but a plan from
			// elsewhere may have one. The rest in name order.
			for _, m := range p.Members {
				if !done[m.Name] {
					order = append(order, m)
					done[m.Name] = true
				}
			}
		}
	}
	return order
}

func (pl *planner) memberAction(m *Member) (string, string) {
	st, ok := pl.obs.Members[m.Name]
	switch {
	case !ok:
		return ActionCreate, "not found"
	case pl.in.NoRecreate && !st.Running:
		return ActionStart, "not running (--no-recreate)"
	case pl.in.NoRecreate:
		return ActionNone, "running (--no-recreate)"
	case pl.in.ForceRecreate:
		return ActionRecreate, "--force-recreate"
	case pl.in.AlwaysRecreateDeps && pl.isDependency(m):
		return ActionRecreate, "--always-recreate-deps"
	case st.ConfigHash != m.ConfigHash:
		return ActionRecreate, "config changed"
	case m.Kind == Container && pl.in.Build && pl.p.Compose.Services[m.Service].Build != nil:
		return ActionRecreate, "--build"
	case !st.Running:
		return ActionStart, "not running"
	}
	return ActionNone, "running"
}

// matchObserved finds, for a planned container that nothing observed runs
// under its member name, the observed one of the same container name:
// its member was named otherwise (a service's scale went from one to
// more, which names its members web-1, web-2, ..., or back), and it is
// that member's container to recreate, not an orphan beside a new one of
// the same name.
func (pl *planner) matchObserved() {
	var moved map[string]MemberState
	for _, m := range pl.plan.Members {
		if m.Kind != Container || m.Container == "" {
			continue
		}
		if _, ok := pl.obs.Members[m.Name]; ok {
			continue
		}
		for name, st := range pl.obs.Members {
			if st.Kind == Container && st.Container == m.Container && pl.members[name] == nil {
				if moved == nil {
					moved = maps.Clone(pl.obs.Members)
				}
				delete(moved, name)
				moved[m.Name] = st
				break
			}
		}
	}
	if moved != nil {
		pl.obs.Members = moved
	}
}

// isDependency reports whether another member depends on m.
func (pl *planner) isDependency(m *Member) bool {
	for _, o := range pl.plan.Members {
		for _, d := range o.DependsOn {
			if d.Member == m.Name {
				return true
			}
		}
	}
	return false
}

func (pl *planner) imageStep(svc string) Step {
	s := pl.p.Compose.Services[svc]
	img := ImageName(pl.p, s)
	if pl.in.Build && s.Build != nil {
		return Step{Kind: KindImage, Name: svc, Action: ActionBuild, Reason: "--build", Detail: img + " from " + s.Build.Context}
	}
	policy := cmp.Or(s.PullPolicy, types.PullPolicyMissing)
	detail := img + ", pull_policy " + policy
	if s.Build != nil {
		detail += ", built from " + s.Build.Context + " if missing"
	}
	return Step{Kind: KindImage, Name: svc, Action: ActionEnsure, Detail: detail}
}

// ImageName is the image a service runs: its image:, or the name Compose
// gives a built one.
func ImageName(p *spec.Project, svc types.ServiceConfig) string {
	if svc.Image != "" {
		return svc.Image
	}
	return p.Name + "-" + svc.Name
}

// namedVolumes returns the keys of the named volumes a service mounts.
func (pl *planner) namedVolumes(service string) []string {
	var out []string
	for _, v := range pl.p.Compose.Services[service].Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source != "" && !slices.Contains(out, v.Source) {
			out = append(out, v.Source)
		}
	}
	return out
}

// VolumeName is the engine's name for a project's volume: its name:, or
// the project's name and its key, as Compose names it.
func VolumeName(p *spec.Project, key string) string {
	if v, ok := p.Compose.Volumes[key]; ok && v.Name != "" {
		return v.Name
	}
	return p.Name + "_" + key
}

// ContainerName is the engine's name for a container member: its
// container_name:, or project-service-replica, as Compose names it.
func ContainerName(p *spec.Project, m *Member) string {
	svc := p.Compose.Services[m.Service]
	if svc.ContainerName != "" {
		return svc.ContainerName
	}
	return fmt.Sprintf("%s-%s-%d", p.Name, m.Service, m.Replica)
}

func (pl *planner) firewallDetail() string {
	var ports int
	for _, m := range pl.plan.Members {
		ports += len(m.Ports)
	}
	return fmt.Sprintf("isolation, anti-spoofing, NAT, %d port forwards", ports)
}

// String renders the plan one step a line, in the form docker compose's
// plan uses, with what each step makes in brackets:
//
//	[] -> #1 network lan, Create, not found (bridge fub…, 10.80.1.0/24 gw 10.80.1.1)
//	[1] -> #2 firewall shop, Apply (isolation, anti-spoofing, NAT, 1 port forwards)
func (p *Plan) String() string {
	var b strings.Builder
	for _, s := range p.Steps {
		deps := make([]string, len(s.Deps))
		for i, d := range s.Deps {
			deps[i] = fmt.Sprint(d)
		}
		fmt.Fprintf(&b, "[%s] -> #%d %s %s, %s", strings.Join(deps, " "), s.ID, s.Kind, s.Name, s.Action)
		if s.Reason != "" {
			fmt.Fprintf(&b, ", %s", s.Reason)
		}
		if s.Detail != "" {
			fmt.Fprintf(&b, " (%s)", s.Detail)
		}
		b.WriteByte('\n')
	}
	for _, o := range p.Orphans {
		fmt.Fprintf(&b, "orphan %s: kept (up --remove-orphans removes it)\n", o)
	}
	return b.String()
}

// checkIntent reports the services asked for that the project does not
// have, as docker compose does.
func (pl *planner) checkIntent() error {
	var unknown []string
	for _, s := range pl.in.Services {
		if !slices.ContainsFunc(pl.plan.Members, func(m *Member) bool { return m.Service == s || m.Name == s }) {
			unknown = append(unknown, s)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("no such service, VM or member: %s", strings.Join(unknown, ", "))
	}
	return nil
}
