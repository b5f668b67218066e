package kube

import (
	"encoding/json"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/foldup/foldup/planner"
)

// DNSName is the name of the DNS/DHCP server's Deployment and of the
// ConfigMap holding the plan it serves.
const DNSName = "foldup-dns"

// dns writes foldup's DNS, DHCP and RA server as on one host: foldup
// dnsd, fed the plan (a ConfigMap), on each of the project's networks at
// the gateway addresses, each attachment named as the host's bridge is,
// which is where dnsd serves DHCP.
func (b *builder) dns() error {
	served := *b.plan
	served.Steps, served.Orphans = nil, nil
	raw, err := json.MarshalIndent(&served, "", "  ")
	if err != nil {
		return err
	}
	labels := map[string]string{LabelRole: "dns"}
	b.configs = append(b.configs, &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: b.meta(DNSName, labels),
		Data:       map[string]string{"plan.json": string(raw) + "\n"},
	})
	var refs []nadRef
	for _, n := range b.plan.Networks {
		if n.External || len(n.DNSAddrs()) == 0 {
			continue
		}
		refs = append(refs, nadRef{Name: Name(n.Name), Namespace: b.ns, Interface: n.Bridge, IPs: ips(n, n.Gateway4, n.Gateway6)})
	}
	if len(refs) == 0 {
		return nil
	}
	nets, err := json.Marshal(refs)
	if err != nil {
		return err
	}
	meta := b.meta(DNSName, labels)
	b.deploys = append(b.deploys, &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta,
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			// One server a network: a second would answer DHCP beside it.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelProject: meta.Labels[LabelProject], LabelRole: "dns"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: meta.Labels, Annotations: map[string]string{networksAnnotation: string(nets)}},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:  "dnsd",
						Image: b.image,
						Args:  []string{"dnsd", "--plan", "/etc/foldup/plan.json", "--lease-file", "/var/lib/foldup/leases.json"},
						SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
							Add: []corev1.Capability{"NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"},
						}},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "plan", MountPath: "/etc/foldup", ReadOnly: true},
							{Name: "leases", MountPath: "/var/lib/foldup"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "plan", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: DNSName}}}},
						{Name: "leases", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	})
	return nil
}

// withDNS is a pod spec resolving through foldup's server.
func (b *builder) withDNS(m *planner.Member, ps *corev1.PodSpec) {
	ps.DNSPolicy, ps.DNSConfig = b.dnsConfig(m)
}
