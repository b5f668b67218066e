//go:build linux

package containers

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	composetypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	"github.com/moby/go-archive"
	"github.com/moby/patternmatcher/ignorefile"
)

// Dial connects to the engine at host ("" : DOCKER_HOST, else the
// default socket), negotiating the API version.
func Dial(host string) (Engine, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	return client.NewClientWithOpts(opts...)
}

func ProjectFilter(project string, more ...filters.KeyValuePair) filters.Args {
	return filters.NewArgs(append(more, filters.Arg("label", LabelProject+"="+project))...)
}

// IsPodman reports whether an engine of version v is Podman's
// Docker-compatible service.
func IsPodman(v types.Version) bool {
	for _, c := range v.Components {
		if strings.HasPrefix(c.Name, "Podman") {
			return true
		}
	}
	return false
}

// EnsureNetwork makes Docker's network for n, bound to foldup's bridge
// (which exists already, so Docker adopts it and leaves it on removal),
// with Docker's masquerade off (foldup's table decides NAT) and Docker's
// IPAM limited to its range (not on Podman). An existing one with the
// project's label is kept.
func EnsureNetwork(ctx context.Context, dc Engine, project string, n *planner.Network, podman bool) error {
	if nw, err := dc.NetworkInspect(ctx, n.DockerName, network.InspectOptions{}); err == nil {
		if nw.Labels[LabelProject] != project {
			return fmt.Errorf("docker network %s exists and is not this project's (no %s=%s label)", n.DockerName, LabelProject, project)
		}
		return nil
	} else if !errdefs.IsNotFound(err) {
		return err
	}
	ipam := &network.IPAM{Driver: "default"}
	if n.Subnet4.IsValid() {
		c := network.IPAMConfig{Subnet: n.Subnet4.String(), Gateway: n.Gateway4.String()}
		// Podman's IPAM (CNI host-local) hands out only addresses in the
		// range, even those asked for: foldup's own containers' too.
		if n.DockerRange4.IsValid() && !podman {
			c.IPRange = n.DockerRange4.String()
		}
		ipam.Config = append(ipam.Config, c)
	}
	v6 := n.Subnet6.IsValid()
	if v6 {
		ipam.Config = append(ipam.Config, network.IPAMConfig{Subnet: n.Subnet6.String(), Gateway: n.Gateway6.String()})
	}
	opts := map[string]string{
		"com.docker.network.bridge.name":                 n.Bridge,
		"com.docker.network.bridge.enable_ip_masquerade": "false",
	}
	if n.MTU != 0 {
		opts["com.docker.network.driver.mtu"] = fmt.Sprint(n.MTU)
	}
	_, err := dc.NetworkCreate(ctx, n.DockerName, network.CreateOptions{
		Driver:     "bridge",
		EnableIPv6: &v6,
		Internal:   n.Internal,
		IPAM:       ipam,
		Options:    opts,
		Labels:     map[string]string{LabelProject: project, LabelNetwork: n.Name},
	})
	if err != nil {
		return fmt.Errorf("creating docker network %s: %w", n.DockerName, err)
	}
	return nil
}

// EnsureVolume creates the project's named volume key, unless external or
// there already.
func EnsureVolume(ctx context.Context, dc Engine, p *spec.Project, key string) (string, bool, error) {
	v := p.Compose.Volumes[key]
	name := planner.VolumeName(p, key)
	if v.External {
		if _, err := dc.VolumeInspect(ctx, name); err != nil {
			return name, false, fmt.Errorf("external volume %s: %w", name, err)
		}
		return name, false, nil
	}
	if _, err := dc.VolumeInspect(ctx, name); err == nil {
		return name, false, nil
	}
	labels := map[string]string{LabelProject: p.Name, LabelVolume: key}
	for k, val := range v.Labels {
		labels[k] = val
	}
	_, err := dc.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: v.Driver, DriverOpts: v.DriverOpts, Labels: labels})
	if err != nil {
		return name, false, fmt.Errorf("creating volume %s: %w", name, err)
	}
	return name, true, nil
}

// EnsureImage makes sure the service's image is in the engine, as its
// pull_policy says: built when the service has build: and the image is
// missing (always with rebuild or pull_policy: build); pulled when
// missing (always with pull_policy: always); never pulled with
// pull_policy: never.
func EnsureImage(ctx context.Context, dc Engine, p *spec.Project, service string, rebuild bool, out io.Writer) error {
	svc := p.Compose.Services[service]
	img := planner.ImageName(p, svc)
	policy := svc.PullPolicy
	if rebuild && svc.Build != nil {
		policy = composetypes.PullPolicyBuild
	}
	_, err := dc.ImageInspect(ctx, img)
	missing := errdefs.IsNotFound(err)
	if err != nil && !missing {
		return err
	}
	switch {
	case svc.Build != nil && (missing || policy == composetypes.PullPolicyBuild):
		return buildImage(ctx, dc, p, service, img, out)
	case policy == composetypes.PullPolicyAlways:
	case !missing:
		return nil
	case policy == composetypes.PullPolicyNever:
		return fmt.Errorf("image %s is not in the engine (pull_policy: never)", img)
	}
	rc, err := dc.ImagePull(ctx, img, imagePullOptions())
	if err != nil {
		return fmt.Errorf("image %s could not be pulled: %w", img, err)
	}
	defer rc.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil); err != nil {
		return fmt.Errorf("image %s could not be pulled: %w", img, err)
	}
	return nil
}

// buildImage builds a service's image with the engine's builder, from its
// context directory filtered by .dockerignore.
func buildImage(ctx context.Context, dc Engine, p *spec.Project, service, tag string, out io.Writer) error {
	b := p.Compose.Services[service].Build
	ctxDir := b.Context
	if !filepath.IsAbs(ctxDir) {
		ctxDir = filepath.Join(p.WorkingDir, ctxDir)
	}
	dockerfile := b.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if filepath.IsAbs(dockerfile) {
		rel, err := filepath.Rel(ctxDir, dockerfile)
		if err != nil || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("service %s: dockerfile %s is outside the build context %s", service, dockerfile, ctxDir)
		}
		dockerfile = rel
	}
	var excludes []string
	if f, err := os.Open(filepath.Join(ctxDir, ".dockerignore")); err == nil {
		excludes, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("service %s: reading .dockerignore: %w", service, err)
		}
	}
	tarball, err := archive.TarWithOptions(ctxDir, &archive.TarOptions{ExcludePatterns: excludes})
	if err != nil {
		return fmt.Errorf("service %s: reading build context: %w", service, err)
	}
	defer tarball.Close()
	args := map[string]*string{}
	for k, v := range b.Args {
		args[k] = v
	}
	labels := map[string]string{LabelProject: p.Name, LabelService: service}
	for k, v := range b.Labels {
		labels[k] = v
	}
	resp, err := dc.ImageBuild(ctx, tarball, build.ImageBuildOptions{
		Tags:        append([]string{tag}, b.Tags...),
		Dockerfile:  dockerfile,
		BuildArgs:   args,
		Target:      b.Target,
		Labels:      labels,
		NoCache:     b.NoCache,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("service %s: build: %w", service, err)
	}
	defer resp.Body.Close()
	if out == nil {
		out = io.Discard
	}
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, out, 0, false, nil); err != nil {
		return fmt.Errorf("service %s: build: %w", service, err)
	}
	return nil
}

// Create creates the member's container and connects it to its
// other networks; it returns the container's ID.
func Create(ctx context.Context, dc Engine, cs *Spec) (string, error) {
	var nc *network.NetworkingConfig
	cfg := *cs.Config
	if cs.First != "" {
		first := *cs.Network[cs.First]
		if versions.LessThan(dc.ClientVersion(), "1.44") {
			// Before 1.44 the MAC is the container's, not the endpoint's.
			cfg.MacAddress = first.MacAddress //nolint:staticcheck // the only way on API < 1.44
			first.MacAddress = ""
		}
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{cs.First: &first}}
	}
	resp, err := dc.ContainerCreate(ctx, &cfg, cs.Host, nc, cs.Platform, cs.Name)
	if err != nil {
		return "", fmt.Errorf("creating container %s: %w", cs.Name, err)
	}
	for _, name := range cs.Networks {
		if name == cs.First {
			continue
		}
		ep := *cs.Network[name]
		if versions.LessThan(dc.ClientVersion(), "1.44") {
			ep.MacAddress = "" // Docker gives this one a MAC of its own
		}
		if err := dc.NetworkConnect(ctx, name, resp.ID, &ep); err != nil {
			return resp.ID, fmt.Errorf("connecting %s to %s: %w", cs.Name, name, err)
		}
	}
	return resp.ID, nil
}

// KeepAnonymousVolumes returns cs with the anonymous volumes of the
// container of its name (those its spec mounts with no source, and those
// its image declares) mounted again by their names, so that the container
// that replaces it keeps their data, as compose's recreate does. No such
// container: cs as it is.
func KeepAnonymousVolumes(ctx context.Context, dc Engine, cs *Spec) (*Spec, error) {
	anon, err := AnonymousVolumes(ctx, dc, cs)
	if err != nil || len(anon) == 0 {
		return cs, err
	}
	host := *cs.Host
	host.Mounts = slices.Clone(host.Mounts)
	for target, name := range anon {
		i := slices.IndexFunc(host.Mounts, func(hm mount.Mount) bool { return hm.Target == target })
		if i < 0 { // the image's VOLUME
			host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: name, Target: target})
		} else {
			host.Mounts[i].Source = name
		}
	}
	out := *cs
	out.Host = &host
	return &out, nil
}

// AnonymousVolumes are the anonymous volumes of the container of cs's name,
// by where they are mounted: the volumes it mounts where cs mounts a
// volume with no source, or mounts nothing (the image's VOLUMEs). Once
// carried over by name (KeepAnonymousVolumes), Docker counts them as
// named; they stay the service's anonymous volumes here. No container:
// none.
func AnonymousVolumes(ctx context.Context, dc Engine, cs *Spec) (map[string]string, error) {
	old, err := dc.ContainerInspect(ctx, cs.Name)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range old.Mounts {
		if m.Type != mount.TypeVolume || m.Name == "" {
			continue
		}
		i := slices.IndexFunc(cs.Host.Mounts, func(hm mount.Mount) bool { return hm.Target == m.Destination })
		if i < 0 || (cs.Host.Mounts[i].Type == mount.TypeVolume && cs.Host.Mounts[i].Source == "") {
			out[m.Destination] = m.Name
		}
	}
	return out, nil
}

// Remove stops (with the container's own timeout unless given)
// and removes a container; a missing one is not an error.
func Remove(ctx context.Context, dc Engine, name string, timeout *int, volumes bool) error {
	if err := dc.ContainerStop(ctx, name, container.StopOptions{Timeout: timeout}); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	err := dc.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: volumes})
	if err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// WaitCondition waits until the container of a dependency meets cond:
// started (running, or exited after having run), healthy, or exited 0.
func WaitCondition(ctx context.Context, dc Engine, name, cond string) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		c, err := dc.ContainerInspect(ctx, name)
		if err != nil {
			return fmt.Errorf("dependency %s: %w", name, err)
		}
		st := c.State
		switch cond {
		case "", composetypes.ServiceConditionStarted:
			if st.Running || st.FinishedAt != "" && st.FinishedAt != "0001-01-01T00:00:00Z" {
				return nil
			}
		case composetypes.ServiceConditionHealthy:
			if st.Health == nil {
				return fmt.Errorf("dependency %s has no healthcheck, so it cannot become healthy", name)
			}
			switch st.Health.Status {
			case container.Healthy:
				return nil
			case container.Unhealthy:
				return fmt.Errorf("dependency %s is unhealthy", name)
			}
			if !st.Running && !st.Restarting {
				return fmt.Errorf("dependency %s exited (code %d) before it was healthy", name, st.ExitCode)
			}
		case composetypes.ServiceConditionCompletedSuccessfully:
			if !st.Running && !st.Restarting && st.FinishedAt != "" && st.FinishedAt != "0001-01-01T00:00:00Z" {
				if st.ExitCode != 0 {
					return fmt.Errorf("dependency %s exited with code %d", name, st.ExitCode)
				}
				return nil
			}
		default:
			return fmt.Errorf("unknown depends_on condition %q", cond)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// List returns the project's containers by member name.
func List(ctx context.Context, dc Engine, project string, all bool) (map[string]container.Summary, error) {
	list, err := dc.ContainerList(ctx, container.ListOptions{All: all, Filters: ProjectFilter(project)})
	if err != nil {
		return nil, err
	}
	out := map[string]container.Summary{}
	for _, c := range list {
		if c.Labels[LabelOneOff] == "" { // foldup run's are no member's
			out[c.Labels[LabelMember]] = c
		}
	}
	return out, nil
}

// Subnets returns the subnets of Docker networks that are not the
// project's: automatic subnets must avoid them.
func Subnets(ctx context.Context, dc Engine, project string) ([]netip.Prefix, error) {
	nets, err := dc.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, n := range nets {
		if n.Labels[LabelProject] == project {
			continue
		}
		for _, c := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// RemoveNetwork removes the network if it carries the project's
// label.
func RemoveNetwork(ctx context.Context, dc Engine, project, name string) (bool, error) {
	nw, err := dc.NetworkInspect(ctx, name, network.InspectOptions{})
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if nw.Labels[LabelProject] != project {
		return false, nil
	}
	// Containers of no project of ours may have joined (docker run
	// --network): disconnect them, as the network goes.
	for id := range nw.Containers {
		dc.NetworkDisconnect(ctx, nw.ID, id, true)
	}
	if err := dc.NetworkRemove(ctx, nw.ID); err != nil && !errdefs.IsNotFound(err) {
		return false, fmt.Errorf("removing docker network %s: %w", name, err)
	}
	return true, nil
}

// RemoveVolume removes the volume if it carries the project's label.
func RemoveVolume(ctx context.Context, dc Engine, project, name string) (bool, error) {
	v, err := dc.VolumeInspect(ctx, name)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if v.Labels[LabelProject] != project {
		return false, nil
	}
	if err := dc.VolumeRemove(ctx, name, true); err != nil && !errdefs.IsNotFound(err) {
		return false, fmt.Errorf("removing volume %s: %w", name, err)
	}
	return true, nil
}

func imagePullOptions() image.PullOptions { return image.PullOptions{} }
