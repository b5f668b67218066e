//go:build linux

// Package containerstest is an engine for tests: containers.Engine over
// maps, with no processes, images or networks behind it. A container it
// starts runs at once (with no pid, so it has no veths) and is healthy at
// once if it has a health check. Calls records what was asked of it.
package containerstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/foldup/foldup/containers"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Engine is a fake engine. The zero value is not ready: use New.
type Engine struct {
	mu         sync.Mutex
	images     map[string]bool
	networks   map[string]*network.Inspect // by name
	volumes    map[string]*volume.Volume
	containers map[string]*container.InspectResponse // by name
	calls      []string
	ids        int
}

var _ containers.Engine = (*Engine)(nil)

// New returns an engine that has the given images.
func New(images ...string) *Engine {
	e := &Engine{images: map[string]bool{}, networks: map[string]*network.Inspect{},
		volumes: map[string]*volume.Volume{}, containers: map[string]*container.InspectResponse{}}
	for _, i := range images {
		e.images[i] = true
	}
	return e
}

// Calls returns what was asked of the engine that changes something, in
// order: "ContainerCreate NAME", "NetworkRemove NAME", ...
func (e *Engine) Calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls)
}

func (e *Engine) call(format string, args ...any) {
	e.calls = append(e.calls, fmt.Sprintf(format, args...))
}

func notFound(what, name string) error {
	return errdefs.NotFound(fmt.Errorf("no such %s: %s", what, name))
}

// matches says whether labels pass the label filters of f.
func matches(f filters.Args, labels map[string]string) bool {
	for _, l := range f.Get("label") {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}

func (e *Engine) ServerVersion(context.Context) (types.Version, error) {
	return types.Version{Version: "0.0.0-fake", APIVersion: "1.41"}, nil
}
func (e *Engine) Ping(context.Context) (types.Ping, error) {
	return types.Ping{APIVersion: "1.41"}, nil
}
func (e *Engine) DaemonHost() string    { return "fake://" }
func (e *Engine) ClientVersion() string { return "1.41" }
func (e *Engine) Close() error          { return nil }

func (e *Engine) ContainerCreate(_ context.Context, cfg *container.Config, host *container.HostConfig, nc *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.containers[name]; ok {
		return container.CreateResponse{}, errdefs.Conflict(fmt.Errorf("container name %s is in use", name))
	}
	if !e.images[cfg.Image] {
		return container.CreateResponse{}, notFound("image", cfg.Image)
	}
	e.ids++
	c := &container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: fmt.Sprintf("%064x", e.ids), Name: "/" + name, HostConfig: host,
			State: &container.State{Status: container.StateCreated}},
		Config:          cfg,
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{}},
	}
	if nc != nil {
		maps.Copy(c.NetworkSettings.Networks, nc.EndpointsConfig)
	}
	e.containers[name] = c
	e.call("ContainerCreate %s", name)
	return container.CreateResponse{ID: c.ID}, nil
}

// find returns the container of that name or ID. e.mu is held.
func (e *Engine) find(ref string) (*container.InspectResponse, error) {
	for name, c := range e.containers {
		if name == ref || c.ID == ref {
			return c, nil
		}
	}
	return nil, notFound("container", ref)
}

func (e *Engine) ContainerStart(_ context.Context, ref string, _ container.StartOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.find(ref)
	if err != nil {
		return err
	}
	c.State = &container.State{Status: container.StateRunning, Running: true, StartedAt: time.Now().UTC().Format(time.RFC3339Nano)}
	if hc := c.Config.Healthcheck; hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
		c.State.Health = &container.Health{Status: container.Healthy}
	}
	e.call("ContainerStart %s", strings.TrimPrefix(c.Name, "/"))
	return nil
}

func (e *Engine) stop(ref, verb string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.find(ref)
	if err != nil {
		return err
	}
	c.State = &container.State{Status: container.StateExited, FinishedAt: time.Now().UTC().Format(time.RFC3339Nano)}
	e.call("%s %s", verb, strings.TrimPrefix(c.Name, "/"))
	return nil
}

func (e *Engine) ContainerStop(_ context.Context, ref string, _ container.StopOptions) error {
	return e.stop(ref, "ContainerStop")
}

func (e *Engine) ContainerRestart(ctx context.Context, ref string, _ container.StopOptions) error {
	if err := e.stop(ref, "ContainerRestart"); err != nil {
		return err
	}
	return e.ContainerStart(ctx, ref, container.StartOptions{})
}

func (e *Engine) ContainerRemove(_ context.Context, ref string, _ container.RemoveOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.find(ref)
	if err != nil {
		return err
	}
	delete(e.containers, strings.TrimPrefix(c.Name, "/"))
	e.call("ContainerRemove %s", strings.TrimPrefix(c.Name, "/"))
	return nil
}

func (e *Engine) ContainerInspect(_ context.Context, ref string) (container.InspectResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.find(ref)
	if err != nil {
		return container.InspectResponse{}, err
	}
	return *c, nil
}

func (e *Engine) ContainerList(_ context.Context, o container.ListOptions) ([]container.Summary, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []container.Summary
	for _, name := range slices.Sorted(maps.Keys(e.containers)) {
		c := e.containers[name]
		if !o.All && !c.State.Running || !matches(o.Filters, c.Config.Labels) {
			continue
		}
		out = append(out, container.Summary{ID: c.ID, Names: []string{c.Name}, Image: c.Config.Image,
			Labels: c.Config.Labels, State: c.State.Status, Status: c.State.Status})
	}
	return out, nil
}

func (e *Engine) ContainerLogs(context.Context, string, container.LogsOptions) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("")), nil
}

func (e *Engine) ContainerKill(_ context.Context, ref, signal string) error {
	return e.stop(ref, "ContainerKill "+signal)
}

func (e *Engine) ContainerPause(_ context.Context, ref string) error {
	return e.setStatus(ref, "ContainerPause", container.StatePaused)
}

func (e *Engine) ContainerUnpause(_ context.Context, ref string) error {
	return e.setStatus(ref, "ContainerUnpause", container.StateRunning)
}

func (e *Engine) setStatus(ref, verb string, status container.ContainerState) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.find(ref)
	if err != nil {
		return err
	}
	c.State.Status = status
	e.call("%s %s", verb, strings.TrimPrefix(c.Name, "/"))
	return nil
}

func (e *Engine) ContainerTop(context.Context, string, []string) (container.TopResponse, error) {
	return container.TopResponse{}, errNotFaked
}

func (e *Engine) ContainerWait(context.Context, string, container.WaitCondition) (<-chan container.WaitResponse, <-chan error) {
	errs := make(chan error, 1)
	errs <- errNotFaked
	return nil, errs
}

func (e *Engine) ContainerExecStart(context.Context, string, container.ExecStartOptions) error {
	return errNotFaked
}

func (e *Engine) ContainerStats(context.Context, string, bool) (container.StatsResponseReader, error) {
	return container.StatsResponseReader{}, errNotFaked
}

func (e *Engine) ContainerAttach(context.Context, string, container.AttachOptions) (types.HijackedResponse, error) {
	return types.HijackedResponse{}, errNotFaked
}

func (e *Engine) ImageRemove(context.Context, string, image.RemoveOptions) ([]image.DeleteResponse, error) {
	return nil, errNotFaked
}

var errNotFaked = errors.New("the fake engine does not do this")

func (e *Engine) ContainerExecCreate(context.Context, string, container.ExecOptions) (container.ExecCreateResponse, error) {
	return container.ExecCreateResponse{}, errNotFaked
}
func (e *Engine) ContainerExecAttach(context.Context, string, container.ExecAttachOptions) (types.HijackedResponse, error) {
	return types.HijackedResponse{}, errNotFaked
}
func (e *Engine) ContainerExecInspect(context.Context, string) (container.ExecInspect, error) {
	return container.ExecInspect{}, errNotFaked
}

// Events sends nothing until ctx ends.
func (e *Engine) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	errs := make(chan error, 1)
	go func() {
		<-ctx.Done()
		errs <- ctx.Err()
	}()
	return make(chan events.Message), errs
}

func (e *Engine) ImagePush(context.Context, string, image.PushOptions) (io.ReadCloser, error) {
	return nil, errNotFaked
}

func (e *Engine) ImageBuild(context.Context, io.Reader, build.ImageBuildOptions) (build.ImageBuildResponse, error) {
	return build.ImageBuildResponse{}, errNotFaked
}

func (e *Engine) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.images[ref] {
		return image.InspectResponse{}, notFound("image", ref)
	}
	return image.InspectResponse{ID: "sha256:" + ref}, nil
}

// ImagePull fails: like the machines foldup is tested on, the fake
// reaches no registry.
func (e *Engine) ImagePull(_ context.Context, ref string, _ image.PullOptions) (io.ReadCloser, error) {
	return nil, fmt.Errorf("pulling %s: no registry", ref)
}

func (e *Engine) NetworkCreate(_ context.Context, name string, o network.CreateOptions) (network.CreateResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.networks[name]; ok {
		return network.CreateResponse{}, errdefs.Conflict(fmt.Errorf("network %s exists", name))
	}
	e.ids++
	nw := &network.Inspect{Name: name, ID: fmt.Sprintf("%064x", e.ids), Driver: o.Driver, Labels: o.Labels, Options: o.Options, Internal: o.Internal}
	if o.IPAM != nil {
		nw.IPAM = *o.IPAM
	}
	e.networks[name] = nw
	e.call("NetworkCreate %s", name)
	return network.CreateResponse{ID: nw.ID}, nil
}

func (e *Engine) findNetwork(ref string) (*network.Inspect, error) {
	for _, nw := range e.networks {
		if nw.Name == ref || nw.ID == ref {
			return nw, nil
		}
	}
	return nil, notFound("network", ref)
}

func (e *Engine) NetworkInspect(_ context.Context, ref string, _ network.InspectOptions) (network.Inspect, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	nw, err := e.findNetwork(ref)
	if err != nil {
		return network.Inspect{}, err
	}
	return *nw, nil
}

func (e *Engine) NetworkList(_ context.Context, o network.ListOptions) ([]network.Summary, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []network.Summary
	for _, name := range slices.Sorted(maps.Keys(e.networks)) {
		if nw := e.networks[name]; matches(o.Filters, nw.Labels) {
			out = append(out, *nw)
		}
	}
	return out, nil
}

func (e *Engine) NetworkRemove(_ context.Context, ref string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	nw, err := e.findNetwork(ref)
	if err != nil {
		return err
	}
	delete(e.networks, nw.Name)
	e.call("NetworkRemove %s", nw.Name)
	return nil
}

func (e *Engine) NetworkConnect(_ context.Context, ref, ctr string, ep *network.EndpointSettings) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	nw, err := e.findNetwork(ref)
	if err != nil {
		return err
	}
	c, err := e.find(ctr)
	if err != nil {
		return err
	}
	c.NetworkSettings.Networks[nw.Name] = ep
	e.call("NetworkConnect %s %s", nw.Name, strings.TrimPrefix(c.Name, "/"))
	return nil
}

func (e *Engine) NetworkDisconnect(_ context.Context, ref, ctr string, _ bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	nw, err := e.findNetwork(ref)
	if err != nil {
		return err
	}
	if c, err := e.find(ctr); err == nil {
		delete(c.NetworkSettings.Networks, nw.Name)
	}
	return nil
}

func (e *Engine) VolumeCreate(_ context.Context, o volume.CreateOptions) (volume.Volume, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := &volume.Volume{Name: o.Name, Driver: o.Driver, Labels: o.Labels, Options: o.DriverOpts}
	e.volumes[o.Name] = v
	e.call("VolumeCreate %s", o.Name)
	return *v, nil
}

func (e *Engine) VolumeInspect(_ context.Context, name string) (volume.Volume, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.volumes[name]
	if !ok {
		return volume.Volume{}, notFound("volume", name)
	}
	return *v, nil
}

func (e *Engine) VolumeList(_ context.Context, o volume.ListOptions) (volume.ListResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out volume.ListResponse
	for _, name := range slices.Sorted(maps.Keys(e.volumes)) {
		if v := e.volumes[name]; matches(o.Filters, v.Labels) {
			out.Volumes = append(out.Volumes, v)
		}
	}
	return out, nil
}

func (e *Engine) VolumeRemove(_ context.Context, name string, _ bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.volumes[name]; !ok {
		return notFound("volume", name)
	}
	delete(e.volumes, name)
	e.call("VolumeRemove %s", name)
	return nil
}
