package spec

import (
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/go-units"
)

// foldupDecoder decodes and checks foldup's own sections from the
// interpolated, schema-valid documents. Every problem is added to errs,
// positioned; decoding goes on so that all of them are found.
type foldupDecoder struct {
	p    *Project
	errs *ErrorList
	env  types.Mapping
	all  map[string]*VM // every VM, profiles aside
	// noFileChecks: named files are resolved, not looked for
	// (Options.NameOnly).
	noFileChecks bool
}

func (d *foldupDecoder) errorf(path []string, format string, args ...any) {
	d.errs.Add(d.p.Locate(path...), joinPath(path), format, args...)
}

func (d *foldupDecoder) keyErrorf(path []string, format string, args ...any) {
	d.errs.Add(d.p.LocateKey(path...), joinPath(path), format, args...)
}

// vmNames returns the name of every VM in any file, profiles aside.
func (d *foldupDecoder) vmNames(docs []map[string]any) map[string]bool {
	names := map[string]bool{}
	for _, doc := range docs {
		vms, _ := doc["vms"].(map[string]any)
		for n := range vms {
			names[n] = true
		}
	}
	return names
}

// appended are the VM fields whose lists add up across files instead of
// the last file's list replacing the others (compose does the same for
// ports and dns).
var appended = []string{"ports", "dns"}

// decodeOwn decodes what needs no Compose model: settings, records, VMs.
func (d *foldupDecoder) decodeOwn(docs []map[string]any) {
	p := d.p
	p.Settings = d.settings(docs)

	// Top-level dns records, file by file, in order.
	for i, doc := range docs {
		recs, _ := doc["dns"].([]any)
		for j, r := range recs {
			if rec, ok := d.record(d.p.srcs[i], []string{"dns", strconv.Itoa(j)}, r); ok {
				p.DNS = append(p.DNS, rec)
			}
		}
	}

	// VMs: maps merge across files, the later file winning per key.
	merged := map[string]map[string]any{}
	for _, doc := range docs {
		vms, _ := doc["vms"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(vms)) {
			vm, _ := vms[name].(map[string]any)
			norm := normalizeVM(vm)
			for _, k := range appended {
				delete(norm, k)
			}
			merged[name] = mergeMaps(merged[name], norm)
		}
	}
	// FOLDUP_ACCEL matters only to a project with VMs.
	if v := d.env[AccelEnv]; v != "" && len(merged) > 0 {
		if checkAccel(v) {
			p.Settings.EnvAccel = v
		} else {
			d.errs.Add(Pos{}, AccelEnv, "%q (from the environment) is not an accelerator: auto, kvm or tcg", v)
		}
	}
	d.all = map[string]*VM{}
	for _, name := range slices.Sorted(maps.Keys(merged)) {
		vm := d.vm(name, merged[name])
		for i, doc := range docs {
			vms, _ := doc["vms"].(map[string]any)
			raw, _ := vms[name].(map[string]any)
			d.vmAppended(d.p.srcs[i], vm, raw)
		}
		d.all[name] = vm
	}
}

// decodeWithCompose finishes decoding once compose-go has loaded the
// Compose part: network settings, profiles, and the checks that span VMs
// and services.
func (d *foldupDecoder) decodeWithCompose(docs []map[string]any, profiles []string) {
	p := d.p
	// compose-go has merged and interpolated each network's x-foldup.
	p.Networks = map[string]NetworkExt{}
	for name, n := range p.Compose.Networks {
		p.Networks[name] = d.networkExt(name, n)
	}
	p.ServiceNetem = map[string]*Netem{}
	for name, s := range p.Compose.Services {
		if x, ok := s.Extensions["x-foldup"].(map[string]any); ok {
			if v, ok := x["netem"]; ok {
				p.ServiceNetem[name] = d.netem([]string{"services", name, "x-foldup", "netem"}, v)
			}
		}
	}
	p.VMs = map[string]*VM{}
	p.Disabled = map[string]*VM{}
	for name, vm := range d.all {
		if active(vm.Profiles, profiles) {
			p.VMs[name] = vm
		} else {
			p.Disabled[name] = vm
		}
	}
	d.serviceDeps(docs)
	d.check()
}

func active(vmProfiles, enabled []string) bool {
	if len(vmProfiles) == 0 || slices.Contains(enabled, "*") {
		return true
	}
	for _, p := range vmProfiles {
		if slices.Contains(enabled, p) {
			return true
		}
	}
	return false
}

// normalizeVM rewrites the short forms of a VM's fields into their long
// forms, so that files merge key by key: networks and depends_on lists
// become mappings, environment and labels lists become mappings.
func normalizeVM(vm map[string]any) map[string]any {
	out := make(map[string]any, len(vm))
	for k, v := range vm {
		out[k] = v
	}
	if l, ok := vm["networks"].([]any); ok {
		m := map[string]any{}
		for _, n := range l {
			m[fmt.Sprint(n)] = nil
		}
		out["networks"] = m
	}
	if l, ok := vm["depends_on"].([]any); ok {
		m := map[string]any{}
		for _, n := range l {
			m[fmt.Sprint(n)] = map[string]any{"condition": types.ServiceConditionStarted}
		}
		out["depends_on"] = m
	}
	for _, k := range []string{"environment", "labels"} {
		if l, ok := vm[k].([]any); ok {
			m := map[string]any{}
			for _, e := range l {
				key, val, _ := strings.Cut(fmt.Sprint(e), "=")
				m[key] = val
			}
			out[k] = m
		}
	}
	return out
}

// mergeMaps merges over into base: mappings recursively, anything else
// replaced.
func mergeMaps(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bm, ok1 := out[k].(map[string]any)
		om, ok2 := v.(map[string]any)
		switch {
		case ok1 && ok2:
			out[k] = mergeMaps(bm, om)
		case ok1 && v == nil:
			// networks: [lan] in an override names lan without settings:
			// the base's settings stand, as compose merges services.
		default:
			out[k] = v
		}
	}
	return out
}

func (d *foldupDecoder) vm(name string, raw map[string]any) *VM {
	at := func(f ...string) []string { return append([]string{"vms", name}, f...) }
	vm := &VM{
		Name:   name,
		CPUs:   1,
		Memory: 512 << 20,
		Arch:   hostArch(),
	}
	if v, ok := raw["image"].(string); ok {
		vm.Image = d.imageRef(at("image"), v)
	}
	if v, ok := raw["sha256"].(string); ok {
		v = strings.TrimPrefix(strings.ToLower(v), "sha256:")
		if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
			d.errorf(at("sha256"), "%q is not a SHA-256 digest (64 hex digits)", v)
		}
		vm.SHA256 = v
	}
	if v, ok := raw["kernel"].(string); ok {
		vm.Kernel = d.file(at("kernel"), v)
	}
	if v, ok := raw["initrd"].(string); ok {
		vm.Initrd = d.file(at("initrd"), v)
	}
	vm.Cmdline, _ = raw["cmdline"].(string)
	if x, ok := raw["x-foldup"].(map[string]any); ok {
		if v, ok := x["netem"]; ok {
			vm.XFoldup = &VMExt{Netem: d.netem(at("x-foldup", "netem"), v)}
		}
	}
	switch {
	case vm.Image == "" && vm.Kernel == "":
		d.keyErrorf(at(), "needs an image or a kernel to boot")
	case vm.Kernel == "" && (vm.Initrd != "" || vm.Cmdline != ""):
		f := "initrd"
		if vm.Initrd == "" {
			f = "cmdline"
		}
		d.keyErrorf(at(f), "needs kernel")
	case isURL(vm.Image) && vm.SHA256 == "":
		d.errorf(at("image"), "a downloaded image needs sha256, to know it is the one meant")
	}
	if v, ok := raw["cpus"]; ok {
		if n, ok := d.int(at("cpus"), v); ok {
			if n < 1 || n > 255 {
				d.errorf(at("cpus"), "must be between 1 and 255, not %d", n)
			}
			vm.CPUs = n
		}
	}
	if v, ok := raw["memory"]; ok {
		vm.Memory = d.bytes(at("memory"), v)
		if vm.Memory > 0 && vm.Memory < 16<<20 {
			d.errorf(at("memory"), "must be at least 16 MiB, not %s", units.BytesSize(float64(vm.Memory)))
		}
	}
	if v, ok := raw["arch"].(string); ok {
		switch v {
		case "x86_64", "aarch64", "riscv64":
			vm.Arch = v
		default:
			d.errorf(at("arch"), "%q is not a supported architecture (x86_64, aarch64, riscv64)", v)
		}
	}
	if v, ok := raw["accel"].(string); ok {
		vm.Accel = d.accel(at("accel"), v)
	}
	vm.QemuArgs = stringList(raw["qemu_args"])
	if nets, ok := raw["networks"].(map[string]any); ok {
		vm.Networks = map[string]*VMNetwork{}
		for _, n := range slices.Sorted(maps.Keys(nets)) {
			vm.Networks[n] = d.vmNetwork(at("networks", n), nets[n])
		}
	}
	if ci, ok := raw["cloud_init"].(map[string]any); ok {
		vm.CloudInit = d.cloudInit(at("cloud_init"), ci)
	}
	if deps, ok := raw["depends_on"].(map[string]any); ok {
		vm.DependsOn = d.dependsOn(at("depends_on"), deps)
	}
	if hc, ok := raw["healthcheck"].(map[string]any); ok {
		vm.HealthCheck = d.healthCheck(at("healthcheck"), hc)
	}
	if v, ok := raw["restart"].(string); ok {
		vm.Restart = d.restart(at("restart"), v)
	}
	if v, ok := raw["stop_grace_period"].(string); ok {
		if dur, err := time.ParseDuration(v); err == nil {
			td := types.Duration(dur)
			vm.StopGracePeriod = &td
		}
	}
	vm.Environment = stringMap(raw["environment"])
	vm.Labels = stringMap(raw["labels"])
	vm.Profiles = stringList(raw["profiles"])
	return vm
}

// vmAppended decodes the list fields that add up across files, from one
// file's raw VM, with that file's positions.
func (d *foldupDecoder) vmAppended(src *source, vm *VM, raw map[string]any) {
	at := func(f ...string) []string { return append([]string{"vms", vm.Name}, f...) }
	ports, _ := raw["ports"].([]any)
	for i, p := range ports {
		path := at("ports", strconv.Itoa(i))
		pos, _ := src.locate(path)
		var cfgs []types.ServicePortConfig
		var err error
		if long, ok := p.(map[string]any); ok {
			cfgs, err = longPort(long)
		} else {
			cfgs, err = types.ParsePortConfig(fmt.Sprint(p))
		}
		if err != nil {
			d.errs.Add(pos, joinPath(path), "%v", err)
			continue
		}
		for _, c := range cfgs {
			if c.Published == "" {
				d.errs.Add(pos, joinPath(path), "%q needs a host port (HOST:GUEST): a VM's ports are forwarded from fixed host ports", fmt.Sprint(p))
				break
			}
			if !slices.ContainsFunc(vm.Ports, func(o types.ServicePortConfig) bool { return reflect.DeepEqual(o, c) }) {
				vm.Ports = append(vm.Ports, c) // files repeat ports; compose keeps one
			}
		}
	}
	recs, _ := raw["dns"].([]any)
	for i, r := range recs {
		if rec, ok := d.record(src, at("dns", strconv.Itoa(i)), r); ok && !slices.ContainsFunc(vm.DNS, func(o Record) bool { return reflect.DeepEqual(o, rec) }) {
			vm.DNS = append(vm.DNS, rec)
		}
	}
}

// longPort is a port in Compose's long syntax ({target, published,
// host_ip, protocol}), as config prints a VM's ports; published may be a
// range, as in the short syntax.
func longPort(m map[string]any) ([]types.ServicePortConfig, error) {
	short := fmt.Sprint(m["target"])
	if pub, ok := m["published"]; ok {
		short = fmt.Sprint(pub) + ":" + short
	}
	if ip, ok := m["host_ip"].(string); ok && ip != "" {
		if strings.Contains(ip, ":") {
			ip = "[" + ip + "]"
		}
		short = ip + ":" + short
	}
	if proto, ok := m["protocol"].(string); ok && proto != "" {
		short += "/" + proto
	}
	cfgs, err := types.ParsePortConfig(short)
	for i := range cfgs {
		cfgs[i].Name, _ = m["name"].(string)
		cfgs[i].AppProtocol, _ = m["app_protocol"].(string)
		if mode, ok := m["mode"].(string); ok {
			cfgs[i].Mode = mode
		}
	}
	return cfgs, err
}

// IsURL reports whether a VM's image is downloaded (http or https) rather
// than a local file.
func IsURL(s string) bool { return isURL(s) }

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func (d *foldupDecoder) imageRef(path []string, v string) string {
	if !isURL(v) {
		return d.file(path, v)
	}
	if u, err := url.Parse(v); err != nil || u.Host == "" {
		d.errorf(path, "%q is not a valid URL", v)
	}
	return v
}

// file resolves a path from the file against the project directory (~ is
// the user's home) and checks that it names a file.
func (d *foldupDecoder) file(path []string, v string) string {
	p := d.resolve(v)
	if d.noFileChecks {
		return p
	}
	fi, err := os.Stat(p)
	switch {
	case err != nil && os.IsNotExist(err):
		d.errorf(path, "%s: no such file", v)
	case err != nil:
		d.errorf(path, "%v", err)
	case fi.IsDir():
		d.errorf(path, "%s is a directory, not a file", v)
	}
	return p
}

func (d *foldupDecoder) resolve(v string) string {
	if v == "~" || strings.HasPrefix(v, "~/") {
		home := d.env["HOME"]
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		v = filepath.Join(home, strings.TrimPrefix(v, "~"))
	}
	if !filepath.IsAbs(v) {
		v = filepath.Join(d.p.WorkingDir, v)
	}
	return filepath.Clean(v)
}

func (d *foldupDecoder) int(path []string, v any) (int, bool) {
	switch v := v.(type) {
	case int:
		return v, true
	case float64:
		if v == float64(int(v)) {
			return int(v), true
		}
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n, true
		}
	}
	d.errorf(path, "%v is not a whole number", v)
	return 0, false
}

func (d *foldupDecoder) bool(path []string, v any) (bool, bool) {
	switch v := v.(type) {
	case bool:
		return v, true
	case string:
		if b, err := strconv.ParseBool(v); err == nil {
			return b, true
		}
	}
	d.errorf(path, "%v is not true or false", v)
	return false, false
}

func (d *foldupDecoder) bytes(path []string, v any) int64 {
	switch v := v.(type) {
	case int:
		if v > 0 {
			return int64(v)
		}
	case string:
		n, err := units.RAMInBytes(v)
		if err == nil && n > 0 {
			return n
		}
	}
	d.errorf(path, "%v is not a size (bytes, or a number with a unit: 512m, 2g)", v)
	return 0
}

func stringList(v any) []string {
	l, _ := v.([]any)
	if l == nil {
		return nil
	}
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = fmt.Sprint(e)
	}
	return out
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		if e == nil {
			out[k] = ""
			continue
		}
		out[k] = fmt.Sprint(e)
	}
	return out
}

func (d *foldupDecoder) vmNetwork(path []string, v any) *VMNetwork {
	n := &VMNetwork{}
	m, _ := v.(map[string]any)
	if s, ok := m["ipv4_address"].(string); ok {
		if a, err := netip.ParseAddr(s); err != nil || !a.Is4() {
			d.errorf(append(path, "ipv4_address"), "%q is not an IPv4 address", s)
		}
		n.IPv4 = s
	}
	if s, ok := m["ipv6_address"].(string); ok {
		if a, err := netip.ParseAddr(s); err != nil || !a.Is6() || a.Is4In6() {
			d.errorf(append(path, "ipv6_address"), "%q is not an IPv6 address", s)
		}
		n.IPv6 = s
	}
	if s, ok := m["mac_address"].(string); ok {
		n.MAC = s
		if msg := CheckMAC(s); msg != "" {
			d.errorf(append(path, "mac_address"), "%s", msg)
		}
	}
	n.Aliases = stringList(m["aliases"])
	return n
}

// CheckMAC explains what is wrong with s as a member's MAC address (not
// six bytes, multicast, all zero), or returns "".
func CheckMAC(s string) string {
	hw, err := net.ParseMAC(s)
	switch {
	case err != nil || len(hw) != 6:
		return fmt.Sprintf("%q is not a MAC address (six hex bytes: 52:54:00:12:34:56)", s)
	case hw[0]&1 == 1:
		return fmt.Sprintf("%q is a multicast address; a NIC needs a unicast one", s)
	case slices.Equal(hw, make(net.HardwareAddr, 6)):
		return fmt.Sprintf("%q is the all-zero address", s)
	}
	return ""
}

func (d *foldupDecoder) cloudInit(path []string, m map[string]any) *CloudInit {
	ci := &CloudInit{}
	for _, f := range []struct {
		key string
		dst *string
	}{{"user_data", &ci.UserData}, {"meta_data", &ci.MetaData}, {"network_config", &ci.NetworkConfig}, {"iso", &ci.ISO}} {
		if s, ok := m[f.key].(string); ok {
			*f.dst = d.file(append(path, f.key), s)
		}
	}
	for i, k := range stringList(m["ssh_authorized_keys"]) {
		kp := append(slices.Clip(path), "ssh_authorized_keys", strconv.Itoa(i))
		if isPublicKey(k) {
			ci.SSHAuthorizedKeys = append(ci.SSHAuthorizedKeys, k)
			continue
		}
		f := d.file(kp, k)
		b, err := os.ReadFile(f)
		if err != nil {
			continue // reported by file
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				if !isPublicKey(line) {
					d.errorf(kp, "%s does not hold an SSH public key", k)
					break
				}
				ci.SSHAuthorizedKeys = append(ci.SSHAuthorizedKeys, line)
			}
		}
	}
	if ci.ISO != "" && (ci.UserData != "" || ci.MetaData != "" || ci.NetworkConfig != "" || len(ci.SSHAuthorizedKeys) > 0) {
		d.keyErrorf(append(path, "iso"), "a ready seed ISO excludes user_data, meta_data, network_config and ssh_authorized_keys")
	}
	return ci
}

var publicKeyRE = regexp.MustCompile(`^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+=*( .*)?$`)

func isPublicKey(s string) bool { return publicKeyRE.MatchString(s) }

func (d *foldupDecoder) dependsOn(path []string, m map[string]any) types.DependsOnConfig {
	out := types.DependsOnConfig{}
	for _, target := range slices.Sorted(maps.Keys(m)) {
		dep := types.ServiceDependency{Condition: types.ServiceConditionStarted, Required: true}
		if e, ok := m[target].(map[string]any); ok {
			tp := append(slices.Clip(path), target)
			if c, ok := e["condition"].(string); ok {
				dep.Condition = c
			}
			if v, ok := e["required"]; ok {
				dep.Required, _ = d.bool(append(tp, "required"), v)
			}
			if v, ok := e["restart"]; ok {
				dep.Restart, _ = d.bool(append(tp, "restart"), v)
			}
		}
		out[target] = dep
	}
	return out
}

func (d *foldupDecoder) healthCheck(path []string, m map[string]any) *HealthCheck {
	hc := &HealthCheck{
		Interval: types.Duration(DefaultInterval),
		Timeout:  types.Duration(DefaultTimeout),
		Retries:  DefaultRetries,
	}
	hc.Test = stringList(m["test"])
	tp := append(slices.Clip(path), "test")
	switch {
	case len(hc.Test) == 0:
		if _, ok := m["test"]; ok {
			d.errorf(tp, "is empty; write [\"tcp\", PORT], [\"http\", PATH-or-PORT], [\"serial\", REGEX] or [\"NONE\"]")
		}
	case hc.Test[0] == CheckNone:
		hc.Disable = true
	case len(hc.Test) != 2:
		d.errorf(tp, "takes two items, [KIND, ARGUMENT]: [\"tcp\", PORT], [\"http\", PATH-or-PORT] or [\"serial\", REGEX]")
	default:
		arg := hc.Test[1]
		switch hc.Test[0] {
		case CheckTCP:
			if n, err := strconv.Atoi(arg); err != nil || n < 1 || n > 65535 {
				d.errorf(append(tp, "1"), "%q is not a port number", arg)
			}
		case CheckHTTP:
			if msg := checkHTTPTarget(arg); msg != "" {
				d.errorf(append(tp, "1"), "%s", msg)
			}
		case CheckSerial:
			if _, err := regexp.Compile(arg); err != nil {
				d.errorf(append(tp, "1"), "%q is not a regular expression: %v", arg, err)
			}
		default:
			d.errorf(append(tp, "0"), "%q is not a VM health check; use tcp, http, serial or NONE", hc.Test[0])
		}
	}
	for _, f := range []struct {
		key string
		dst *types.Duration
	}{{"interval", &hc.Interval}, {"timeout", &hc.Timeout}, {"start_period", &hc.StartPeriod}} {
		if s, ok := m[f.key].(string); ok {
			dur, _ := time.ParseDuration(s) // the schema checked the format
			if dur <= 0 && f.key != "start_period" {
				d.errorf(append(path, f.key), "must be positive")
			}
			*f.dst = types.Duration(dur)
		}
	}
	if v, ok := m["retries"]; ok {
		if n, ok := d.int(append(path, "retries"), v); ok {
			if n < 1 {
				d.errorf(append(path, "retries"), "must be at least 1")
			}
			hc.Retries = n
		}
	}
	if v, ok := m["disable"]; ok {
		if b, ok := d.bool(append(path, "disable"), v); ok && b {
			hc.Disable = true
		}
	}
	return hc
}

// checkHTTPTarget accepts "PORT", "/PATH" or "PORT/PATH".
func checkHTTPTarget(s string) string {
	port, _, hasPath := strings.Cut(s, "/")
	if port == "" && hasPath {
		return ""
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("%q is not PORT, /PATH or PORT/PATH", s)
	}
	return ""
}

var restartRE = regexp.MustCompile(`^(no|always|unless-stopped|on-failure(:[0-9]+)?)$`)

func (d *foldupDecoder) restart(path []string, v string) string {
	if !restartRE.MatchString(v) {
		d.errorf(path, "%q is not a restart policy: no, always, on-failure[:N] or unless-stopped", v)
	}
	return v
}

// The lengths are checked apart from the patterns: a counted repetition
// such as {0,254} compiles to that many copies of its class, which cost
// 4 ms of every foldup process's start (package init) for two patterns.
var (
	labelRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$`)
	chainRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	// serviceNameRE is Docker's rule for container names.
	serviceNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
)

// isLabel reports whether s is a DNS label as foldup takes them: letters,
// digits, - and _, at most 63, no - first or last.
func isLabel(s string) bool { return len(s) <= 63 && labelRE.MatchString(s) }

// isChain reports whether s can name an nftables chain of foldup's table.
func isChain(s string) bool { return len(s) <= 255 && chainRE.MatchString(s) }

// checkDomain explains what is wrong with s as a DNS name, or returns "".
// "@" and "*." prefixes are not supported: records are names.
func checkDomain(s string) string {
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return fmt.Sprintf("%q is not a DNS name", s)
	}
	if len(name) > 253 {
		return fmt.Sprintf("%q is longer than 253 characters", s)
	}
	for _, l := range strings.Split(name, ".") {
		if !isLabel(l) {
			return fmt.Sprintf("%q is not a DNS name (label %q)", s, l)
		}
	}
	return ""
}

func (d *foldupDecoder) record(src *source, path []string, v any) (Record, bool) {
	m, _ := v.(map[string]any)
	bad := false
	errf := func(p []string, format string, args ...any) {
		pos, _ := src.locate(p)
		d.errs.Add(pos, joinPath(p), format, args...)
		bad = true
	}
	var r Record
	r.Name, _ = m["name"].(string)
	if _, ok := m["name"]; !ok {
		bad = true // the schema says so
	} else if msg := checkDomain(r.Name); msg != "" {
		errf(append(path, "name"), "%s", msg)
	}
	if t, ok := m["ttl"]; ok {
		n, err := strconv.ParseUint(fmt.Sprint(t), 10, 31)
		if err != nil {
			errf(append(path, "ttl"), "%v is not a TTL in seconds", t)
		}
		r.TTL = uint32(n)
	}
	var kinds []string
	for _, k := range []string{"a", "aaaa", "txt", "cname", "srv"} {
		if _, ok := m[k]; ok {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		pos, _ := src.locate(path)
		if len(kinds) == 0 {
			d.errs.Add(pos, joinPath(path), "needs one of a, aaaa, txt, cname, srv")
		} else {
			d.errs.Add(pos, joinPath(path), "has %s: a record has exactly one of a, aaaa, txt, cname, srv", strings.Join(kinds, " and "))
		}
		return r, false
	}
	switch k := kinds[0]; k {
	case "a":
		r.A, _ = m[k].(string)
		if a, err := netip.ParseAddr(r.A); err != nil || !a.Is4() {
			errf(append(path, k), "%q is not an IPv4 address", r.A)
		}
	case "aaaa":
		r.AAAA, _ = m[k].(string)
		if a, err := netip.ParseAddr(r.AAAA); err != nil || !a.Is6() || a.Is4In6() {
			errf(append(path, k), "%q is not an IPv6 address", r.AAAA)
		}
	case "txt":
		if s, ok := m[k].(string); ok {
			r.TXT = []string{s}
		} else {
			r.TXT = stringList(m[k])
			if r.TXT == nil {
				r.TXT = []string{}
			}
		}
	case "cname":
		r.CNAME, _ = m[k].(string)
		if msg := checkDomain(r.CNAME); msg != "" {
			errf(append(path, k), "%s", msg)
		}
	case "srv":
		s, _ := m[k].(map[string]any)
		r.SRV = &SRV{}
		r.SRV.Target, _ = s["target"].(string)
		if _, ok := s["target"]; !ok {
			bad = true // the schema says so
		} else if msg := checkDomain(r.SRV.Target); msg != "" {
			errf(append(path, k, "target"), "%s", msg)
		}
		for _, f := range []struct {
			key string
			dst *uint16
		}{{"port", &r.SRV.Port}, {"priority", &r.SRV.Priority}, {"weight", &r.SRV.Weight}} {
			if v, ok := s[f.key]; ok {
				n, err := strconv.ParseUint(fmt.Sprint(v), 10, 16)
				if err != nil {
					errf(append(path, k, f.key), "%v is not a number from 0 to 65535", v)
				}
				*f.dst = uint16(n)
			}
		}
	}
	return r, !bad
}

// accel checks an accelerator setting.
func (d *foldupDecoder) accel(path []string, v string) string {
	if !checkAccel(v) {
		d.errorf(path, "%q is not an accelerator: auto, kvm or tcg", v)
		return ""
	}
	return v
}

func checkAccel(v string) bool { return v == AccelAuto || v == AccelKVM || v == AccelTCG }

func (d *foldupDecoder) settings(docs []map[string]any) Settings {
	merged := map[string]any{}
	for _, doc := range docs {
		if m, ok := doc["x-foldup"].(map[string]any); ok {
			merged = mergeMaps(merged, m)
		}
	}
	at := func(f ...string) []string { return append([]string{"x-foldup"}, f...) }
	s := Settings{Domain: d.p.Name + "." + DefaultDomainSuffix}
	if v, ok := merged["accel"].(string); ok {
		s.Accel = d.accel(at("accel"), v)
	}
	if v, ok := merged["domain"].(string); ok {
		if msg := checkDomain(v); msg != "" {
			d.errorf(at("domain"), "%s", msg)
		}
		s.Domain = strings.TrimSuffix(strings.ToLower(v), ".")
	}
	for i, u := range stringList(merged["upstream"]) {
		if ap, err := netip.ParseAddrPort(u); err == nil {
			s.Upstream = append(s.Upstream, ap.String())
		} else if a, err := netip.ParseAddr(u); err == nil {
			s.Upstream = append(s.Upstream, netip.AddrPortFrom(a, 53).String())
		} else {
			d.errorf(at("upstream", strconv.Itoa(i)), "%q is not IP or IP:PORT", u)
		}
	}
	if k, ok := merged["kube"].(map[string]any); ok {
		s.Kube.Registry, _ = k["registry"].(string)
		s.Kube.Image, _ = k["image"].(string)
	}
	pools, _ := merged["address_pools"].([]any)
	for i, e := range pools {
		m, _ := e.(map[string]any)
		path := at("address_pools", strconv.Itoa(i))
		base, _ := m["base"].(string)
		pfx, err := netip.ParsePrefix(base)
		if err != nil || !pfx.Addr().Is4() {
			d.errorf(append(path, "base"), "%q is not an IPv4 prefix", base)
			continue
		}
		pool := AddressPool{Base: pfx.Masked(), Size: 24}
		if v, ok := m["size"]; ok {
			n, ok := d.int(append(path, "size"), v)
			if !ok {
				continue
			}
			pool.Size = n
		}
		if pool.Size < pfx.Bits() || pool.Size > 29 {
			d.errorf(append(path, "size"), "must be between the base's prefix length (%d) and 29, not %d", pfx.Bits(), pool.Size)
			continue
		}
		s.AddressPools = append(s.AddressPools, pool)
	}
	if len(s.AddressPools) == 0 {
		s.AddressPools = DefaultAddressPools
	}
	return s
}

func (d *foldupDecoder) networkExt(name string, n types.NetworkConfig) NetworkExt {
	ext := NetworkExt{IPv6: IPv6SLAAC, DHCP: true, Outbound: OutboundNAT}
	if n.Internal {
		ext.Outbound = OutboundDrop
	}
	m, _ := n.Extensions["x-foldup"].(map[string]any)
	at := func(f ...string) []string { return append([]string{"networks", name, "x-foldup"}, f...) }
	if v, ok := m["isolated"]; ok {
		ext.Isolated, _ = d.bool(at("isolated"), v)
	}
	if v, ok := m["dhcp"]; ok {
		ext.DHCP, _ = d.bool(at("dhcp"), v)
	}
	if v, ok := m["ipv6"].(string); ok {
		switch v {
		case IPv6SLAAC, IPv6Static, IPv6StablePrivacy:
			ext.IPv6 = v
		default:
			d.errorf(at("ipv6"), "%q is not an IPv6 mode: slaac, static or stable-privacy", v)
		}
	}
	if ext.Isolated {
		ext.Outbound = OutboundDrop
	}
	if v, ok := m["outbound"].(string); ok {
		switch {
		case ext.Isolated && v != OutboundDrop:
			d.errorf(at("outbound"), "an isolated network sends nothing outside; remove outbound or isolated")
		case v == OutboundNAT || v == OutboundDrop || isChain(v):
			ext.Outbound = v
		default:
			d.errorf(at("outbound"), "%q is not nat, drop or an nftables chain name", v)
		}
	}
	if v, ok := m["netem"]; ok {
		ext.Netem = d.netem(at("netem"), v)
	}
	if k, ok := m["kube"].(map[string]any); ok {
		ext.Kube.CNI, _ = k["cni"].(string)
		ext.Kube.Bridge, _ = k["bridge"].(string)
		ext.Kube.Master, _ = k["master"].(string)
		switch ext.Kube.CNI {
		case "", CNIBridge, CNIOVN:
		case CNIMacvlan:
			if ext.Kube.Master == "" {
				d.errorf(at("kube", "cni"), "macvlan needs kube.master, the nodes' parent interface")
			}
		default:
			d.errorf(at("kube", "cni"), "%q is not a CNI plugin foldup kube writes: bridge, macvlan or ovn-k8s-cni-overlay", ext.Kube.CNI)
		}
	}
	for i, g := range stringList(m["multicast"]) {
		a, err := netip.ParseAddr(g)
		if err != nil || !a.IsMulticast() {
			d.errorf(at("multicast", strconv.Itoa(i)), "%q is not a multicast group address", g)
			continue
		}
		ext.Multicast = append(ext.Multicast, a)
	}
	return ext
}
