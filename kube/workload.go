package kube

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
)

// containerKeys are the service keys foldup kube writes a Kubernetes
// field for (or that the plan carries: networks, addresses, scale). Any
// other key a service sets is warned of.
var containerKeys = map[string]bool{
	"image": true, "command": true, "entrypoint": true, "environment": true, "env_file": true,
	"working_dir": true, "user": true, "privileged": true, "cap_add": true, "cap_drop": true,
	"healthcheck": true, "volumes": true, "tmpfs": true, "ports": true, "expose": true,
	"restart": true, "stop_grace_period": true, "mem_limit": true, "cpus": true, "labels": true,
	"hostname": true, "networks": true, "tty": true, "stdin_open": true, "read_only": true,
	"profiles": true, "scale": true, "mac_address": true, "container_name": true, "deploy": true,
	"annotations": true, "sysctls": true,
}

// noNetem is the warning of an x-foldup.netem.
const noNetem = "Kubernetes has no link impairment of its own: dropped; a chaos tool (Chaos Mesh's NetworkChaos, Litmus) can impair a pod's network where the cluster has one"

// DefaultVolumeSize is what a named volume's claim asks for: Compose
// volumes have no size.
const DefaultVolumeSize = "1Gi"

func (b *builder) volume(name string) {
	v := b.p.Compose.Volumes[name]
	path := []string{"volumes", name}
	if bool(v.External) {
		b.warn(path, "external: foldup kube writes no PersistentVolumeClaim; one named %s must exist in namespace %s", Name(cmp.Or(v.Name, name)), b.ns)
		return
	}
	if v.Driver != "" && v.Driver != "local" || len(v.DriverOpts) > 0 {
		b.warn(path, "driver and driver_opts have no Kubernetes equivalent: the claim takes the cluster's default storage class")
	}
	b.pvcs = append(b.pvcs, &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: b.meta(Name(name), map[string]string{"foldup.dev/volume": Name(name)}),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(DefaultVolumeSize)}},
		},
	})
}

// container writes a service's replica as a Deployment of one pod, with
// the replica's own addresses and MAC; a service that is not restarted
// (restart: "no", on-failure) as a Job.
func (b *builder) container(m *planner.Member) error {
	s, ok := b.p.Compose.Services[m.Service]
	if !ok {
		return fmt.Errorf("member %s: no service %s", m.Name, m.Service)
	}
	base := []string{"services", m.Service}
	for _, k := range b.p.Keys(base...) {
		switch {
		case k == "x-foldup":
			if b.p.ServiceNetem[m.Service] != nil {
				b.warn(append(base, k, "netem"), noNetem)
			}
		case strings.HasPrefix(k, "x-"): // extensions: the user's own
		case !containerKeys[k]:
			b.warn(append(base, k), "no Kubernetes field for it in what foldup kube writes; dropped")
		}
	}
	if len(s.DependsOn) > 0 {
		b.warn(append(base, "depends_on"), "Kubernetes starts every pod at once: a member must wait for what it needs itself (foldup's DNS answers for each as soon as it is planned)")
	}
	image := s.Image
	if image == "" {
		image = b.p.Name + "-" + s.Name
	}
	if s.Build != nil {
		b.warn(append(base, "build"), "the cluster does not build: push %s where its nodes pull from", image)
	}
	c := corev1.Container{
		Name:       Name(s.Name),
		Image:      image,
		Command:    s.Entrypoint,
		Args:       s.Command,
		WorkingDir: s.WorkingDir,
		TTY:        s.Tty,
		Stdin:      s.StdinOpen,
	}
	for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
		v := s.Environment[k]
		if v == nil {
			continue // unset: no value to give
		}
		c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: *v})
	}
	sc := &corev1.SecurityContext{}
	if s.Privileged {
		sc.Privileged = ptr.To(true)
	}
	if s.ReadOnly {
		sc.ReadOnlyRootFilesystem = ptr.To(true)
	}
	if len(s.CapAdd)+len(s.CapDrop) > 0 {
		sc.Capabilities = &corev1.Capabilities{}
		for _, cp := range s.CapAdd {
			sc.Capabilities.Add = append(sc.Capabilities.Add, corev1.Capability(strings.TrimPrefix(cp, "CAP_")))
		}
		for _, cp := range s.CapDrop {
			sc.Capabilities.Drop = append(sc.Capabilities.Drop, corev1.Capability(strings.TrimPrefix(cp, "CAP_")))
		}
	}
	if s.User != "" {
		user, group, _ := strings.Cut(s.User, ":")
		if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
			sc.RunAsUser = ptr.To(uid)
			if gid, err := strconv.ParseInt(group, 10, 64); err == nil {
				sc.RunAsGroup = ptr.To(gid)
			}
		} else {
			b.warn(append(base, "user"), "Kubernetes takes a user by number only: %q is dropped; give its uid", s.User)
		}
	}
	if *sc != (corev1.SecurityContext{}) {
		c.SecurityContext = sc
	}
	for _, p := range s.Ports {
		c.Ports = append(c.Ports, corev1.ContainerPort{ContainerPort: int32(p.Target), Protocol: protocol(p.Protocol)})
	}
	if probe := b.containerProbe(base, s.HealthCheck); probe != nil {
		c.ReadinessProbe = probe
	}
	limits := corev1.ResourceList{}
	if s.MemLimit > 0 {
		limits[corev1.ResourceMemory] = *resource.NewQuantity(int64(s.MemLimit), resource.BinarySI)
	}
	if s.CPUS > 0 {
		limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(s.CPUS*1000), resource.DecimalSI)
	}
	if s.Deploy != nil && s.Deploy.Resources.Limits != nil {
		if l := s.Deploy.Resources.Limits; l.MemoryBytes > 0 {
			limits[corev1.ResourceMemory] = *resource.NewQuantity(int64(l.MemoryBytes), resource.BinarySI)
		}
		if l := s.Deploy.Resources.Limits; l.NanoCPUs > 0 {
			limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(float64(l.NanoCPUs)*1000), resource.DecimalSI)
		}
	}
	if len(limits) > 0 {
		c.Resources.Limits = limits
	}

	pod := corev1.PodSpec{Hostname: Name(m.Hostname)}
	for i, v := range s.Volumes {
		vpath := append(base, "volumes", strconv.Itoa(i))
		name := fmt.Sprintf("v%d", i)
		switch v.Type {
		case types.VolumeTypeVolume:
			if v.Source == "" { // anonymous: the pod's own
				pod.Volumes = append(pod.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			} else {
				claim := Name(v.Source)
				if vol, ok := b.p.Compose.Volumes[v.Source]; ok && vol.Name != "" && bool(vol.External) {
					claim = Name(vol.Name)
				}
				pod.Volumes = append(pod.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: v.ReadOnly}}})
			}
		case types.VolumeTypeTmpfs:
			pod.Volumes = append(pod.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
		default:
			b.warn(vpath, "a %s mount of a host path has no place on a cluster's nodes: dropped; use a named volume, or a ConfigMap for files", v.Type)
			continue
		}
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: v.Target, ReadOnly: v.ReadOnly})
	}
	for i, t := range s.Tmpfs {
		name := fmt.Sprintf("tmpfs%d", i)
		target, _, _ := strings.Cut(t, ":")
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: target})
	}
	if len(s.Sysctls) > 0 {
		pod.SecurityContext = &corev1.PodSecurityContext{}
		for _, k := range slices.Sorted(maps.Keys(s.Sysctls)) {
			pod.SecurityContext.Sysctls = append(pod.SecurityContext.Sysctls, corev1.Sysctl{Name: k, Value: s.Sysctls[k]})
		}
	}
	if s.StopGracePeriod != nil {
		pod.TerminationGracePeriodSeconds = ptr.To(int64(time.Duration(*s.StopGracePeriod).Seconds()))
	}
	pod.Containers = []corev1.Container{c}
	b.withDNS(m, &pod)

	meta := b.meta(Name(m.Name), memberLabels(m))
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: meta.Labels}, Spec: pod}
	annotations := map[string]string{}
	for k, v := range s.Labels {
		annotations[k] = v
	}
	for k, v := range s.Annotations {
		annotations[k] = v
	}
	nets, err := b.attachments(m)
	if err != nil {
		return err
	}
	if nets != "" {
		annotations[networksAnnotation] = nets
	}
	if len(annotations) > 0 {
		tmpl.Annotations = annotations
	}

	policy, limit := restartPolicy(s.Restart)
	if policy == corev1.RestartPolicyAlways {
		tmpl.Spec.RestartPolicy = corev1.RestartPolicyAlways
		b.deploys = append(b.deploys, &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: meta,
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](1),
				// The replica's addresses are its own: never two pods
				// with them at once.
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelProject: meta.Labels[LabelProject], LabelMember: meta.Labels[LabelMember]}},
				Template: tmpl,
			},
		})
		return nil
	}
	tmpl.Spec.RestartPolicy = policy
	b.jobs = append(b.jobs, &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: meta,
		Spec:       batchv1.JobSpec{BackoffLimit: ptr.To(limit), Template: tmpl},
	})
	return nil
}

// restartPolicy is a Compose restart policy as a pod's: always and
// unless-stopped keep it running (a Deployment); "no" runs it once and
// on-failure[:N] until it succeeds, N times at most (Jobs). A service
// that says nothing is a Deployment, as kompose makes it: on a cluster a
// service is expected to come back when its node does.
func restartPolicy(restart string) (corev1.RestartPolicy, int32) {
	policy, arg, _ := strings.Cut(restart, ":")
	switch policy {
	case types.RestartPolicyNo:
		return corev1.RestartPolicyNever, 0
	case types.RestartPolicyOnFailure:
		n, err := strconv.Atoi(arg)
		if err != nil || n <= 0 {
			n = 6 // the Job's default
		}
		return corev1.RestartPolicyOnFailure, int32(n)
	}
	return corev1.RestartPolicyAlways, 0
}

func protocol(p string) corev1.Protocol {
	switch strings.ToLower(p) {
	case "udp":
		return corev1.ProtocolUDP
	case "sctp":
		return corev1.ProtocolSCTP
	}
	return corev1.ProtocolTCP
}

// containerProbe is a Compose health check as a readiness probe: its
// command run in the container.
func (b *builder) containerProbe(base []string, h *types.HealthCheckConfig) *corev1.Probe {
	if h == nil || h.Disable || len(h.Test) == 0 || h.Test[0] == "NONE" {
		return nil
	}
	var cmd []string
	switch h.Test[0] {
	case "CMD":
		cmd = h.Test[1:]
	case "CMD-SHELL":
		cmd = []string{"/bin/sh", "-c", strings.Join(h.Test[1:], " ")}
	default:
		b.warn(append(base, "healthcheck", "test"), "%q is not CMD or CMD-SHELL: no readiness probe", h.Test[0])
		return nil
	}
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}}
	p.PeriodSeconds, p.TimeoutSeconds, p.InitialDelaySeconds = seconds(h.Interval, 30), seconds(h.Timeout, 30), seconds(h.StartPeriod, 0)
	if h.Retries != nil {
		p.FailureThreshold = int32(*h.Retries)
	}
	return p
}

func seconds(d *types.Duration, def int32) int32 {
	if d == nil {
		return def
	}
	return int32(max(time.Duration(*d).Round(time.Second)/time.Second, 1))
}

// service writes a Service for a member's ports, as kompose does: the
// published port to the target, in the cluster.
func (b *builder) service(m *planner.Member) {
	if len(m.Ports) == 0 {
		return
	}
	// A Service's name starts with a letter (RFC 1035).
	name := Name(m.Name)
	if name != "" && (name[0] < 'a' || name[0] > 'z') {
		name = strings.TrimSuffix(("m-" + name)[:min(len(name)+2, 63)], "-")
	}
	meta := b.meta(name, memberLabels(m))
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{LabelProject: meta.Labels[LabelProject], LabelMember: meta.Labels[LabelMember]},
		},
	}
	for _, p := range m.Ports {
		proto := protocol(p.Protocol)
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name:       fmt.Sprintf("%d-%s", p.HostPort, strings.ToLower(string(proto))),
			Port:       int32(p.HostPort),
			TargetPort: intstr.FromInt32(int32(p.Target)),
			Protocol:   proto,
		})
	}
	b.services = append(b.services, svc)
}

// policy closes the pod network of a member whose networks all send
// nothing outside (isolated, or outbound: drop), where the cluster
// enforces NetworkPolicies: no ingress, no egress there.
func (b *builder) policy(m *planner.Member) {
	if len(m.NICs) == 0 {
		return
	}
	for _, nic := range m.NICs {
		n := b.plan.Network(nic.Network)
		if n == nil || !(n.Isolated || n.Outbound == spec.OutboundDrop) {
			return
		}
	}
	meta := b.meta(Name(m.Name)+"-isolated", memberLabels(m))
	np := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: meta,
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelProject: meta.Labels[LabelProject], LabelMember: meta.Labels[LabelMember]}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	// Its published ports stay open, as on one host, where they are
	// forwarded to an isolated member all the same.
	if len(m.Ports) > 0 {
		var rule networkingv1.NetworkPolicyIngressRule
		for _, p := range m.Ports {
			rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Protocol: ptr.To(protocol(p.Protocol)), Port: ptr.To(intstr.FromInt32(int32(p.Target)))})
		}
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{rule}
	}
	b.policies = append(b.policies, np)
}
