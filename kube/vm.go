package kube

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
)

// vmKeys are the VM keys foldup kube writes a KubeVirt field for (or that
// the plan carries). Any other key a VM sets is warned of.
var vmKeys = map[string]bool{
	"image": true, "sha256": true, "kernel": true, "initrd": true, "cmdline": true, "cpus": true,
	"memory": true, "arch": true, "networks": true, "cloud_init": true, "ports": true,
	"healthcheck": true, "restart": true, "stop_grace_period": true, "dns": true, "labels": true,
	"profiles": true,
}

// MaxInlineUserData is the most user-data KubeVirt takes inline in a
// VirtualMachine; more goes to a Secret.
const MaxInlineUserData = 2048

// Where a VM's boot image (kernelBoot's container) holds the kernel and
// initrd.
const (
	BootKernelPath = "/boot/vmlinuz"
	BootInitrdPath = "/boot/initrd.img"
)

// DefaultDiskSize is what a DataVolume imported from an image's URL asks
// for: the file does not say how large its disk is.
const DefaultDiskSize = "10Gi"

// Image is a container image foldup kube names for a VM: a kernel and
// initrd for kernelBoot, or a disk for a containerDisk, made from the
// VM's files (foldup kube build).
type Image struct {
	Ref  string // registry/name:tag
	VM   string
	Kind string            // boot or disk
	File map[string]string // path in the image → the file on this host
}

// Images are the container images the VMs of p, planned as plan, boot
// from, as Build names them.
func Images(p *spec.Project, plan *planner.Plan) []Image {
	registry := cmp.Or(p.Settings.Kube.Registry, DefaultRegistry)
	var out []Image
	for _, m := range plan.Members {
		v := p.VMs[m.Service]
		if m.Kind != planner.VM || v == nil || m.Replica > 1 {
			continue
		}
		ref := func(kind string, files map[string]string) string {
			return fmt.Sprintf("%s/%s-%s-%s:%s", registry, Name(plan.Project), Name(m.Service), kind, contentTag(m.ConfigHash, files))
		}
		if v.Kernel != "" {
			files := map[string]string{BootKernelPath: v.Kernel}
			if v.Initrd != "" {
				files[BootInitrdPath] = v.Initrd
			}
			out = append(out, Image{Ref: ref("boot", files), VM: m.Service, Kind: "boot", File: files})
		}
		if v.Image != "" && !isURL(v.Image) {
			files := map[string]string{"/disk/" + diskName(v.Image): v.Image}
			out = append(out, Image{Ref: ref("disk", files), VM: m.Service, Kind: "disk", File: files})
		}
	}
	return out
}

// contentTag is an image's tag: a hash of the VM's configuration and of
// the files' contents, so that a kernel or disk rebuilt in place gets a
// new tag (and the VirtualMachine a new image, which nodes pull). A file
// that is not here (foldup kube writes without them) counts by its name.
func contentTag(configHash string, files map[string]string) string {
	h := sha256.New()
	io.WriteString(h, configHash)
	for _, p := range slices.Sorted(maps.Keys(files)) {
		io.WriteString(h, "\x00"+p+"\x00")
		f, err := os.Open(files[p])
		if err != nil {
			io.WriteString(h, filepath.Base(files[p]))
			continue
		}
		io.Copy(h, f)
		f.Close()
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

func diskName(path string) string {
	if strings.HasSuffix(path, ".raw") || strings.HasSuffix(path, ".img") {
		return "disk.img"
	}
	return "disk.qcow2"
}

// kubeArch is a VM's arch as KubeVirt names it.
var kubeArch = map[string]string{"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x"}

func (b *builder) vm(m *planner.Member) error {
	v := b.p.VMs[m.Service]
	if v == nil {
		return fmt.Errorf("member %s: no VM %s", m.Name, m.Service)
	}
	base := []string{"vms", m.Service}
	for _, k := range b.p.Keys(base...) {
		switch {
		case vmKeys[k]:
		case k == "qemu_args":
			b.warn(append(base, k), "KubeVirt runs qemu itself and takes no arguments for it: dropped; a KubeVirt sidecar hook can change its domain")
		case k == "accel":
			b.warn(append(base, k), "KubeVirt uses KVM, or emulation where the cluster's KubeVirt sets useEmulation: dropped")
		case k == "depends_on":
			b.warn(append(base, k), "KubeVirt starts every VM at once: a guest must wait for what it needs itself")
		case k == "x-foldup":
			if v.XFoldup != nil && v.XFoldup.Netem != nil {
				b.warn(append(base, k, "netem"), noNetem)
			}
		case strings.HasPrefix(k, "x-"): // extensions: the user's own
		default:
			b.warn(append(base, k), "no KubeVirt field for it in what foldup kube writes; dropped")
		}
	}
	if v.Arch != "" && kubeArch[v.Arch] == "" {
		b.warn(append(base, "arch"), "KubeVirt runs amd64, arm64 and s390x guests, not %s", v.Arch)
	}
	if h := v.HealthCheck; h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] == spec.CheckSerial {
		b.warn(append(base, "healthcheck", "test"), "KubeVirt cannot read a guest's serial console for readiness: no probe; use a tcp or http check, or KubeVirt's guestAgentPing")
	}

	name := Name(m.Name)
	labels := memberLabels(m)
	var images []Image
	for _, im := range b.images {
		if im.VM == m.Service {
			images = append(images, im)
		}
	}

	dom := kubevirtv1.DomainSpec{
		CPU:    &kubevirtv1.CPU{Cores: uint32(max(v.CPUs, 1))},
		Memory: &kubevirtv1.Memory{Guest: resource.NewQuantity(v.Memory, resource.BinarySI)},
	}
	vmi := kubevirtv1.VirtualMachineInstanceSpec{
		Domain:       dom,
		Hostname:     Name(m.Hostname),
		Architecture: kubeArch[v.Arch],
	}
	if v.StopGracePeriod != nil {
		vmi.TerminationGracePeriodSeconds = ptr.To(int64(time.Duration(*v.StopGracePeriod).Seconds()))
	}
	imageOf := func(kind string) string {
		for _, im := range images {
			if im.Kind == kind {
				return im.Ref
			}
		}
		return ""
	}
	var dvs []kubevirtv1.DataVolumeTemplateSpec
	if v.Kernel != "" {
		kb := &kubevirtv1.KernelBoot{KernelArgs: v.Cmdline, Container: &kubevirtv1.KernelBootContainer{
			Image: imageOf("boot"), KernelPath: BootKernelPath, ImagePullPolicy: corev1.PullIfNotPresent}}
		if v.Initrd != "" {
			kb.Container.InitrdPath = BootInitrdPath
		}
		vmi.Domain.Firmware = &kubevirtv1.Firmware{KernelBoot: kb}
	}
	// A disk, whether the VM boots from it or from a kernel with it.
	switch {
	case isURL(v.Image):
		dv := name + "-disk"
		b.warn(append(base, "image"), "imported by CDI into a DataVolume of %s: the file does not say how large the disk is", DefaultDiskSize)
		dvs = append(dvs, kubevirtv1.DataVolumeTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Name: dv},
			Spec: cdiv1.DataVolumeSpec{
				Source: &cdiv1.DataVolumeSource{HTTP: &cdiv1.DataVolumeSourceHTTP{URL: v.Image}},
				Storage: &cdiv1.StorageSpec{Resources: corev1.VolumeResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(DefaultDiskSize)}}},
			},
		})
		vmi.Domain.Devices.Disks = append(vmi.Domain.Devices.Disks, kubevirtv1.Disk{Name: "disk", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}})
		vmi.Volumes = append(vmi.Volumes, kubevirtv1.Volume{Name: "disk", VolumeSource: kubevirtv1.VolumeSource{DataVolume: &kubevirtv1.DataVolumeSource{Name: dv}}})
	case v.Image != "":
		vmi.Domain.Devices.Disks = append(vmi.Domain.Devices.Disks, kubevirtv1.Disk{Name: "disk", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}})
		vmi.Volumes = append(vmi.Volumes, kubevirtv1.Volume{Name: "disk", VolumeSource: kubevirtv1.VolumeSource{
			ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: imageOf("disk"), Path: "/disk/" + diskName(v.Image), ImagePullPolicy: corev1.PullIfNotPresent}}})
	}
	if err := b.cloudInit(m, v, base, &vmi); err != nil {
		return err
	}

	// The project's networks, in the plan's order, with its MACs; the
	// guest takes its addresses by DHCP from foldup's server.
	for _, nic := range m.NICs {
		if b.plan.Network(nic.Network) == nil {
			continue
		}
		n := Name(nic.Network)
		nad := b.ns + "/" + vmNAD(nic.Network)
		if b.p.Networks[nic.Network].Kube.CNI == spec.CNIOVN {
			nad = b.ns + "/" + Name(nic.Network)
		}
		vmi.Domain.Devices.Interfaces = append(vmi.Domain.Devices.Interfaces, kubevirtv1.Interface{
			Name: n, MacAddress: nic.MAC, InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Bridge: &kubevirtv1.InterfaceBridge{}}})
		vmi.Networks = append(vmi.Networks, kubevirtv1.Network{Name: n, NetworkSource: kubevirtv1.NetworkSource{Multus: &kubevirtv1.MultusNetwork{NetworkName: nad}}})
	}
	// The pod network, last, where the cluster must reach the guest: its
	// ports (a Service) and a tcp or http readiness probe.
	probe := b.vmProbe(v)
	if len(m.Ports) > 0 || probe != nil {
		vmi.Domain.Devices.Interfaces = append(vmi.Domain.Devices.Interfaces, kubevirtv1.Interface{
			Name: PodInterface, InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}}})
		vmi.Networks = append(vmi.Networks, kubevirtv1.Network{Name: PodInterface, NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{}}})
		// With a list, masquerade forwards only the ports on it: the
		// probe's too, or the VM is never ready.
		pod := &vmi.Domain.Devices.Interfaces[len(vmi.Domain.Devices.Interfaces)-1]
		for _, p := range m.Ports {
			pod.Ports = append(pod.Ports, kubevirtv1.Port{Port: int32(p.Target), Protocol: strings.ToUpper(p.Protocol)})
		}
		if port := probePort(probe); port > 0 && len(pod.Ports) > 0 &&
			!slices.ContainsFunc(pod.Ports, func(p kubevirtv1.Port) bool { return p.Port == port && p.Protocol == "TCP" }) {
			pod.Ports = append(pod.Ports, kubevirtv1.Port{Port: port, Protocol: "TCP"})
		}
		vmi.ReadinessProbe = probe
	} else {
		// No pod network: the guest's interfaces are the project's only.
		vmi.Domain.Devices.AutoattachPodInterface = ptr.To(false)
	}

	meta := b.meta(name, labels)
	tmplMeta := metav1.ObjectMeta{Labels: meta.Labels}
	if len(v.Labels) > 0 {
		tmplMeta.Annotations = map[string]string{}
		for k, val := range v.Labels {
			tmplMeta.Annotations[k] = val
		}
	}
	b.vms = append(b.vms, &kubevirtv1.VirtualMachine{
		TypeMeta:   metav1.TypeMeta{APIVersion: "kubevirt.io/v1", Kind: "VirtualMachine"},
		ObjectMeta: meta,
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy:         ptr.To(runStrategy(v.Restart)),
			Template:            &kubevirtv1.VirtualMachineInstanceTemplateSpec{ObjectMeta: tmplMeta, Spec: vmi},
			DataVolumeTemplates: dvs,
		},
	})
	return nil
}

// PodInterface names a VM's interface on the pod network; no project
// network may have its name (Build refuses one).
const PodInterface = "kube-pod"

// probePort is the TCP port a readiness probe connects to, or 0.
func probePort(p *kubevirtv1.Probe) int32 {
	switch {
	case p == nil:
		return 0
	case p.TCPSocket != nil:
		return p.TCPSocket.Port.IntVal
	case p.HTTPGet != nil:
		return p.HTTPGet.Port.IntVal
	}
	return 0
}

// runStrategy is a restart policy as KubeVirt's: always and
// unless-stopped (and none said, as for a service) keep the VM running,
// on-failure reruns it when it fails, "no" runs it once.
func runStrategy(restart string) kubevirtv1.VirtualMachineRunStrategy {
	policy, _, _ := strings.Cut(restart, ":")
	switch policy {
	case "no":
		return kubevirtv1.RunStrategyOnce
	case "on-failure":
		return kubevirtv1.RunStrategyRerunOnFailure
	}
	return kubevirtv1.RunStrategyAlways
}

// vmProbe is a tcp or http health check as KubeVirt's readiness probe.
func (b *builder) vmProbe(v *spec.VM) *kubevirtv1.Probe {
	h := v.HealthCheck
	if h == nil || h.Disable || len(h.Test) < 2 {
		return nil
	}
	p := &kubevirtv1.Probe{
		PeriodSeconds:       durSeconds(time.Duration(h.Interval)),
		TimeoutSeconds:      durSeconds(time.Duration(h.Timeout)),
		InitialDelaySeconds: int32(time.Duration(h.StartPeriod) / time.Second),
		FailureThreshold:    int32(h.Retries),
	}
	switch h.Test[0] {
	case spec.CheckTCP:
		port, err := strconv.Atoi(h.Test[1])
		if err != nil {
			return nil
		}
		p.TCPSocket = &corev1.TCPSocketAction{Port: intstr.FromInt(port)}
	case spec.CheckHTTP:
		port, path := httpTarget(h.Test[1])
		p.HTTPGet = &corev1.HTTPGetAction{Port: intstr.FromInt(port), Path: path}
	default:
		return nil
	}
	return p
}

// httpTarget reads an http check's argument: a URL (http://:8080/health),
// a port, or a path (port 80).
func httpTarget(arg string) (int, string) {
	rest := strings.TrimPrefix(arg, "http://")
	host, path, _ := strings.Cut(rest, "/")
	path = "/" + path
	if _, p, ok := strings.Cut(host, ":"); ok {
		if n, err := strconv.Atoi(p); err == nil {
			return n, path
		}
	}
	if n, err := strconv.Atoi(host); err == nil {
		return n, path
	}
	if strings.HasPrefix(arg, "/") {
		return 80, arg
	}
	return 80, path
}

func durSeconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	return int32(max(d.Round(time.Second)/time.Second, 1))
}

// cloudInit gives a VM its NoCloud user-data and network-config, inline
// or, over KubeVirt's inline limit, from a Secret; authorized keys as
// KubeVirt's access credentials.
func (b *builder) cloudInit(m *planner.Member, v *spec.VM, base []string, s *kubevirtv1.VirtualMachineInstanceSpec) error {
	ci := v.CloudInit
	if ci == nil {
		return nil
	}
	path := append(base, "cloud_init")
	if ci.ISO != "" {
		b.warn(append(path, "iso"), "KubeVirt makes the NoCloud disk itself from user-data: a ready ISO is dropped; give user_data")
		return nil
	}
	if ci.MetaData != "" {
		b.warn(append(path, "meta_data"), "KubeVirt writes a VM's meta-data itself (instance-id, hostname): dropped")
	}
	read := func(f string) (string, error) {
		if f == "" {
			return "", nil
		}
		raw, err := os.ReadFile(f)
		return string(raw), err
	}
	user, err := read(ci.UserData)
	if err != nil {
		return err
	}
	netcfg, err := read(ci.NetworkConfig)
	if err != nil {
		return err
	}
	src := &kubevirtv1.CloudInitNoCloudSource{}
	secret := Name(m.Name) + "-cloud-init"
	data := map[string][]byte{}
	if len(user) > MaxInlineUserData || len(netcfg) > MaxInlineUserData {
		src.UserDataSecretRef = &corev1.LocalObjectReference{Name: secret}
		data["userdata"] = []byte(user)
		if netcfg != "" {
			src.NetworkDataSecretRef = &corev1.LocalObjectReference{Name: secret}
			data["networkdata"] = []byte(netcfg)
		}
	} else {
		src.UserData, src.NetworkData = user, netcfg
	}
	if src.UserData == "" && src.UserDataSecretRef == nil {
		src.UserData = "#cloud-config\n{}\n"
	}
	if len(ci.SSHAuthorizedKeys) > 0 {
		keys := Name(m.Name) + "-ssh-keys"
		kd := map[string][]byte{}
		for i, k := range ci.SSHAuthorizedKeys {
			kd["key"+strconv.Itoa(i)] = []byte(strings.TrimSpace(k))
		}
		b.secrets = append(b.secrets, &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: b.meta(keys, memberLabels(m)),
			Data:       kd,
		})
		s.AccessCredentials = append(s.AccessCredentials, kubevirtv1.AccessCredential{SSHPublicKey: &kubevirtv1.SSHPublicKeyAccessCredential{
			Source:            kubevirtv1.SSHPublicKeyAccessCredentialSource{Secret: &kubevirtv1.AccessCredentialSecretSource{SecretName: keys}},
			PropagationMethod: kubevirtv1.SSHPublicKeyAccessCredentialPropagationMethod{NoCloud: &kubevirtv1.NoCloudSSHPublicKeyAccessCredentialPropagation{}},
		}})
	}
	if len(data) > 0 {
		b.secrets = append(b.secrets, &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: b.meta(secret, memberLabels(m)),
			Data:       data,
		})
	}
	s.Domain.Devices.Disks = append(s.Domain.Devices.Disks, kubevirtv1.Disk{Name: "cloudinit", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}})
	s.Volumes = append(s.Volumes, kubevirtv1.Volume{Name: "cloudinit", VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: src}})
	slices.SortFunc(b.secrets, func(a, c *corev1.Secret) int { return strings.Compare(a.Name, c.Name) })
	return nil
}
