//go:build linux

package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/vm"
)

// Stat is one member's resource use, as docker stats shows a container's:
// a VM's is its qemu process's (CPU over one second, resident memory,
// threads), its limit the guest's memory.
type Stat struct {
	Name     string
	Kind     string
	CPU      float64 // percent of one CPU
	Memory   uint64  // bytes
	MemLimit uint64  // bytes
	PIDs     uint64
}

// Stats samples the project's running containers and VMs (the named ones,
// or all) at once; it takes about a second.
func (x *Executor) Stats(ctx context.Context, project string, members []string) ([]Stat, error) {
	list, err := x.Ps(ctx, project, false)
	if err != nil {
		return nil, err
	}
	var dc containers.Engine
	out := make([]Stat, 0, len(list))
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range list {
		if len(members) > 0 && !containsStatus(members, m) {
			continue
		}
		if m.Kind != planner.VM && dc == nil {
			if dc, err = x.engine(); err != nil {
				return nil, err
			}
		}
		wg.Go(func() {
			var st Stat
			var err error
			if m.Kind == planner.VM {
				st, err = vmStat(ctx, x.o.dirs(project), m)
			} else {
				st, err = containerStat(ctx, dc, m)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
				return
			}
			out = append(out, st)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return out, errs[0]
	}
	slices.SortFunc(out, func(a, b Stat) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// containerStat is docker stats --no-stream's reading of a container: CPU
// against the host's over the engine's own interval, memory without the
// page cache.
func containerStat(ctx context.Context, dc containers.Engine, m MemberStatus) (Stat, error) {
	r, err := dc.ContainerStats(ctx, m.ID, false)
	if err != nil {
		return Stat{}, err
	}
	defer r.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
		return Stat{}, err
	}
	st := Stat{Name: m.Name, Kind: m.Kind, MemLimit: s.MemoryStats.Limit, PIDs: s.PidsStats.Current}
	cpu := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sys := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	if cpu > 0 && sys > 0 {
		st.CPU = cpu / sys * float64(max(s.CPUStats.OnlineCPUs, 1)) * 100
	}
	st.Memory = s.MemoryStats.Usage
	if v, ok := s.MemoryStats.Stats["inactive_file"]; ok && v < st.Memory {
		st.Memory -= v // cgroup v2, as docker stats shows it
	} else if v, ok := s.MemoryStats.Stats["total_inactive_file"]; ok && v < st.Memory {
		st.Memory -= v
	}
	return st, nil
}

// vmStat reads a VM's qemu from /proc: its CPU time over one second, its
// resident memory and its threads; its limit is the guest's memory.
func vmStat(ctx context.Context, d state.Dirs, m MemberStatus) (Stat, error) {
	pid, err := strconv.Atoi(strings.TrimPrefix(m.ID, "qemu:"))
	if err != nil {
		return Stat{}, fmt.Errorf("no qemu: %q", m.ID)
	}
	st := Stat{Name: m.Name, Kind: m.Kind}
	if rec, err := vm.ReadRecord(vm.For(d, m.Member)); err == nil && rec.Launch.Config.Memory > 0 {
		st.MemLimit = uint64(rec.Launch.Config.Memory)
	}
	t0, start := uint64(0), time.Now()
	if t0, err = procCPU(pid); err != nil {
		return Stat{}, err
	}
	select {
	case <-ctx.Done():
		return Stat{}, ctx.Err()
	case <-time.After(time.Second):
	}
	t1, err := procCPU(pid)
	if err != nil {
		return Stat{}, err
	}
	const ticks = 100 // USER_HZ, what /proc counts in on Linux
	st.CPU = float64(t1-t0) / ticks / time.Since(start).Seconds() * 100
	st.Memory = procStatusField(pid, "VmRSS") << 10
	st.PIDs = procStatusField(pid, "Threads")
	return st, nil
}

// procCPU is a process's user and system time, in clock ticks.
func procCPU(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, _ := strconv.ParseUint(fields[11], 10, 64)
	k, _ := strconv.ParseUint(fields[12], 10, 64)
	return u + k, nil
}

// procStatusField is a /proc/PID/status field's first number.
func procStatusField(pid int, key string) uint64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			if f := strings.Fields(v); len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}
