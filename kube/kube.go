// Package kube writes a project as Kubernetes objects, for a cluster with
// KubeVirt (VMs) and Multus (the project's layer-2 networks), from its
// plan: the subnets, addresses, MACs, ports and per-VM records foldup up
// uses on one host. The objects are the API's own types (k8s.io/api,
// kubevirt.io/api, Multus' NetworkAttachmentDefinition); what has no
// faithful Kubernetes equivalent is dropped with a positioned warning.
package kube

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
)

// Labels foldup puts on every object it writes.
const (
	LabelProject = "foldup.dev/project"
	LabelMember  = "foldup.dev/member"
	LabelService = "foldup.dev/service"
	// LabelRole marks the DNS/DHCP server's objects.
	LabelRole = "foldup.dev/role"
)

// Multus' annotation naming a pod's secondary networks.
const networksAnnotation = "k8s.v1.cni.cncf.io/networks"

// Defaults of Options.
const (
	DefaultRegistry = "localhost:5000"
	DefaultImage    = "ghcr.io/foldup/foldup"
)

// Object is one Kubernetes object: its type and its metadata.
type Object interface {
	metav1.Object
	GetObjectKind() schema.ObjectKind
}

// Options are what the files do not say: foldup's version (the DNS
// server's image tag, unless x-foldup.kube.image names one).
type Options struct {
	Version string
}

// Result is what Build writes: the objects in a stable order, and what
// it could not carry over.
type Result struct {
	Namespace string
	Objects   []Object
	Warnings  []spec.Warning
}

// Build writes the project p, planned as plan, as Kubernetes objects.
func Build(p *spec.Project, plan *planner.Plan, o Options) (*Result, error) {
	b := &builder{p: p, plan: plan, o: o, ns: Name(plan.Project)}
	b.registry = cmp.Or(p.Settings.Kube.Registry, DefaultRegistry)
	b.image = p.Settings.Kube.Image
	b.images = Images(p, plan) // once: their tags read the VMs' files
	if b.image == "" {
		b.image = DefaultImage + ":" + cmp.Or(strings.TrimPrefix(o.Version, "v"), "latest")
	}
	if err := b.build(); err != nil {
		return nil, err
	}
	objs := b.objects()
	if err := checkNames(objs); err != nil {
		return nil, err
	}
	return &Result{Namespace: b.ns, Objects: objs, Warnings: b.warnings}, nil
}

// checkNames refuses what Kubernetes would: an empty name, and two
// objects of a kind under one name (web_1 and web-1 are both web-1 there,
// and the second would overwrite the first).
func checkNames(objs []Object) error {
	seen := map[string]bool{}
	for _, o := range objs {
		kind := o.GetObjectKind().GroupVersionKind().Kind
		if o.GetName() == "" {
			return fmt.Errorf("a %s would have no name: name the project, its networks, services and VMs with letters or digits", kind)
		}
		key := kind + "/" + o.GetName()
		if seen[key] {
			return fmt.Errorf("two %ss would be named %s in Kubernetes (names there are lower case, with - for _ and .): rename one", kind, o.GetName())
		}
		seen[key] = true
	}
	return nil
}

type builder struct {
	p        *spec.Project
	plan     *planner.Plan
	o        Options
	ns       string
	registry string
	image    string
	images   []Image // the VMs' boot and disk images

	namespace *corev1.Namespace
	configs   []*corev1.ConfigMap
	secrets   []*corev1.Secret
	nads      []*nadv1.NetworkAttachmentDefinition
	pvcs      []*corev1.PersistentVolumeClaim
	deploys   []*appsv1.Deployment
	jobs      []*batchv1.Job
	vms       []*kubevirtv1.VirtualMachine
	services  []*corev1.Service
	policies  []*networkingv1.NetworkPolicy
	warnings  []spec.Warning
}

// objects is every object in the order they are applied: what others
// refer to first.
func (b *builder) objects() []Object {
	out := []Object{b.namespace}
	out = appendObjects(out, b.configs)
	out = appendObjects(out, b.secrets)
	out = appendObjects(out, b.nads)
	out = appendObjects(out, b.pvcs)
	out = appendObjects(out, b.deploys)
	out = appendObjects(out, b.jobs)
	out = appendObjects(out, b.vms)
	out = appendObjects(out, b.services)
	return appendObjects(out, b.policies)
}

func appendObjects[T Object](out []Object, objs []T) []Object {
	for _, o := range objs {
		out = append(out, o)
	}
	return out
}

// warn adds a warning at the key path.
func (b *builder) warn(path []string, format string, args ...any) {
	b.warnings = append(b.warnings, spec.Warning{Pos: b.p.Locate(path...), Key: strings.Join(path, "."), Msg: fmt.Sprintf(format, args...)})
}

// Name is s as a Kubernetes object name (RFC 1123 label): lower case,
// [a-z0-9-], at most 63 characters, starting and ending alphanumeric.
func Name(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	n := b.String()
	if len(n) > 63 {
		n = n[:63]
	}
	return strings.Trim(n, "-")
}

func (b *builder) meta(name string, labels map[string]string) metav1.ObjectMeta {
	l := map[string]string{LabelProject: Name(b.plan.Project)}
	for k, v := range labels {
		l[k] = v
	}
	return metav1.ObjectMeta{Name: name, Namespace: b.ns, Labels: l}
}

func memberLabels(m *planner.Member) map[string]string {
	return map[string]string{LabelMember: Name(m.Name), LabelService: Name(m.Service)}
}

func (b *builder) build() error {
	b.namespace = &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: b.ns, Labels: map[string]string{LabelProject: Name(b.plan.Project)}},
	}
	for _, n := range b.plan.Networks {
		if Name(n.Name) == PodInterface {
			return fmt.Errorf("network %s: its Kubernetes name %s is the one foldup kube gives a VM's pod network: rename it", n.Name, PodInterface)
		}
		if err := b.network(n); err != nil {
			return err
		}
	}
	if err := b.dns(); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(b.p.Compose.Volumes)) {
		b.volume(name)
	}
	for _, m := range b.plan.Members {
		var err error
		switch m.Kind {
		case planner.Container:
			err = b.container(m)
		case planner.VM:
			err = b.vm(m)
		}
		if err != nil {
			return err
		}
		b.service(m)
		b.policy(m)
	}
	b.warnings = slices.CompactFunc(b.warnings, func(a, c spec.Warning) bool { return a == c })
	return nil
}

// vmNAD is the name of the attachment KubeVirt's bridge binding uses on a
// network: the same segment without IPAM, since the guest takes its
// address by DHCP from foldup's server and the pod side has none.
func vmNAD(network string) string { return Name(network) + "-vm" }

// network writes a network's two NetworkAttachmentDefinitions: one with
// static IPAM, whose addresses and MAC each pod's annotation gives (the
// plan's), and one without IPAM for VMs.
func (b *builder) network(n *planner.Network) error {
	ext := b.p.Networks[n.Name]
	path := []string{"networks", n.Name}
	if n.External {
		b.warn(path, "external: foldup kube writes no NetworkAttachmentDefinition for it; it must exist in namespace %s as %s and %s", b.ns, Name(n.Name), vmNAD(n.Name))
		return nil
	}
	var subnets []string
	for _, s := range []netip.Prefix{n.Subnet4, n.Subnet6} {
		if s.IsValid() {
			subnets = append(subnets, s.String())
		}
	}
	plugin := func(ipam bool) map[string]any {
		var c map[string]any
		switch ext.Kube.CNI {
		case spec.CNIMacvlan:
			c = map[string]any{"type": "macvlan", "master": ext.Kube.Master, "mode": "bridge"}
		case spec.CNIOVN:
			c = map[string]any{"type": spec.CNIOVN, "topology": "layer2", "netAttachDefName": b.ns + "/" + Name(n.Name), "subnets": strings.Join(subnets, ",")}
			if n.MTU > 0 {
				c["mtu"] = n.MTU
			}
			return c
		default:
			c = map[string]any{"type": "bridge", "bridge": cmp.Or(ext.Kube.Bridge, n.Bridge), "macspoofchk": true}
		}
		if n.MTU > 0 {
			c["mtu"] = n.MTU
		}
		if ipam {
			c["ipam"] = map[string]any{"type": "static"}
			c["capabilities"] = map[string]bool{"ips": true, "mac": true}
		} else {
			c["ipam"] = map[string]any{}
		}
		return c
	}
	for _, v := range []struct {
		name string
		ipam bool
	}{{Name(n.Name), true}, {vmNAD(n.Name), false}} {
		if ext.Kube.CNI == spec.CNIOVN && !v.ipam {
			continue // OVN's layer-2 network is one attachment for pods and VMs
		}
		conf := map[string]any{"cniVersion": "0.4.0", "name": b.ns + "-" + Name(n.Name), "plugins": []any{plugin(v.ipam)}}
		raw, err := json.Marshal(conf)
		if err != nil {
			return err
		}
		b.nads = append(b.nads, &nadv1.NetworkAttachmentDefinition{
			TypeMeta:   metav1.TypeMeta{APIVersion: "k8s.cni.cncf.io/v1", Kind: "NetworkAttachmentDefinition"},
			ObjectMeta: b.meta(v.name, map[string]string{"foldup.dev/network": Name(n.Name)}),
			Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: string(raw)},
		})
	}
	if ext.Kube.CNI == "" || ext.Kube.CNI == spec.CNIBridge {
		b.warn(append(path, "x-foldup", "kube", "cni"), "a bridge CNI network is one node's bridge, which does not span nodes: members on other nodes do not meet; give kube.bridge an admin's uplinked bridge, or use macvlan or ovn-k8s-cni-overlay")
	}
	guard := "the bridge plugin's macspoofchk holds each pod to its MAC"
	switch ext.Kube.CNI {
	case spec.CNIMacvlan:
		guard = "macvlan holds no member to its MAC"
	case spec.CNIOVN:
		guard = "OVN's port security holds each member to its MAC"
	}
	b.warn(path, "foldup's anti-spoofing beyond the MAC (each member's own addresses in IP, ARP and neighbour discovery; no DHCP server or router advertisement but foldup's) is not enforced on Kubernetes, and %s; use MultiNetworkPolicy or OVN's port security where the cluster has them", guard)
	if ext.Netem != nil {
		b.warn(append(path, "x-foldup", "netem"), noNetem)
	}
	if len(n.Multicast) > 0 {
		b.warn(append(path, "x-foldup", "multicast"), "Kubernetes has no multicast filtering on a secondary network: every member receives every group")
	}
	if n.Isolated || n.Outbound == spec.OutboundDrop {
		b.warn(append(path, "x-foldup", "isolated"), "the segment itself is not closed off on Kubernetes: a NetworkPolicy closes its members' pod network; use MultiNetworkPolicy where the cluster has it for the segment")
	} else if n.Outbound != spec.OutboundNAT {
		b.warn(append(path, "x-foldup", "outbound"), "an nftables chain (%s) has no Kubernetes equivalent; members reach out through their pod network", n.Outbound)
	}
	return nil
}

// nadRef is a pod's request for one attachment: the plan's addresses
// (with the subnet's prefix length) and MAC.
type nadRef struct {
	Name      string   `json:"name"`
	Namespace string   `json:"namespace,omitempty"`
	IPs       []string `json:"ips,omitempty"`
	MAC       string   `json:"mac,omitempty"`
	Interface string   `json:"interface,omitempty"`
}

func (b *builder) attachments(m *planner.Member) (string, error) {
	var refs []nadRef
	for _, nic := range m.NICs {
		n := b.plan.Network(nic.Network)
		if n == nil {
			continue
		}
		refs = append(refs, nadRef{Name: Name(nic.Network), Namespace: b.ns, MAC: nic.MAC, IPs: ips(n, nic.IPv4, nic.IPv6)})
	}
	if len(refs) == 0 {
		return "", nil
	}
	raw, err := json.Marshal(refs)
	return string(raw), err
}

// ips are the addresses a pod asks for on network n, with the subnets'
// prefix lengths.
func ips(n *planner.Network, v4, v6 netip.Addr) []string {
	var out []string
	if v4.IsValid() {
		out = append(out, netip.PrefixFrom(v4, n.Subnet4.Bits()).String())
	}
	if v6.IsValid() {
		out = append(out, netip.PrefixFrom(v6, n.Subnet6.Bits()).String())
	}
	return out
}

// dnsConfig is what a pod resolves with: foldup's server on the gateway
// of its first network, and the project's domain.
func (b *builder) dnsConfig(m *planner.Member) (corev1.DNSPolicy, *corev1.PodDNSConfig) {
	for _, nic := range m.NICs {
		if n := b.plan.Network(nic.Network); n != nil && len(n.DNSAddrs()) > 0 {
			var servers []string
			for _, a := range n.DNSAddrs() {
				servers = append(servers, a.String())
			}
			return corev1.DNSNone, &corev1.PodDNSConfig{Nameservers: servers, Searches: []string{b.plan.Domain}}
		}
	}
	return corev1.DNSClusterFirst, nil
}
