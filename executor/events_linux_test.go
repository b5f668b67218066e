//go:build linux

package executor

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/foldup/foldup/containers/containerstest"
	"github.com/foldup/foldup/internal/foldtest"
)

const eventsProject = `
name: ev
networks:
  lan: {}
services:
  db:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "touch /ready; exec sleep 3600"]
    networks: [lan]
    volumes: ["data:/data"]
    healthcheck: {test: ["CMD", "test", "-e", "/ready"], interval: 200ms}
  web:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
    networks: [lan]
    depends_on: {db: {condition: service_healthy}}
volumes:
  data: {}
`

// eventLog records events as each object's statuses, in order.
type eventLog struct {
	mu      sync.Mutex
	objects map[string][]string
	errs    []string
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.State == EventNote || e.State == EventWarning {
		return
	}
	if l.objects == nil {
		l.objects = map[string][]string{}
	}
	key := e.Kind + " " + e.Name
	l.objects[key] = append(l.objects[key], e.Status)
	if e.Err != nil {
		l.errs = append(l.errs, key+": "+e.Err.Error())
	}
}

func (l *eventLog) String() string {
	var lines []string
	for k, v := range l.objects {
		lines = append(lines, k+": "+strings.Join(v, " "))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestUpEvents brings a small project up and down twice, on the real
// engine and on containerstest's fake, and compares what each reported
// of every object: the same statuses in the same order, and those the
// executor is meant to send. The executor's goroutines are all gone
// after each round.
func TestUpEvents(t *testing.T) {
	e := newTestEnv(t)
	want := strings.TrimSpace(`
Container ev-db-1: Creating Starting Started Waiting Healthy
Container ev-web-1: Creating Starting Started
Firewall foldup-ev: Applied
Network ev_lan: Created
Supervisor ev: Started
Volume ev_data: Created`)
	wantDown := strings.TrimSpace(`
Container ev-db-1: Stopping Removed
Container ev-web-1: Stopping Removed
Network ev_lan: Removed
Volume ev_data: Removed`)
	round := func(name string, o Options) (up, down string) {
		t.Helper()
		before := runtime.NumGoroutine()
		p := e.load(t, "ev", eventsProject)
		var upLog, downLog eventLog
		o.Events = upLog.add
		x := New(o)
		res, err := x.Up(t.Context(), p, UpOptions{InProcess: true})
		if err != nil {
			New(e.o).Down(context.Background(), p.Name, DownOptions{Volumes: true, Force: true})
			t.Fatalf("%s: up: %v", name, err)
		}
		o.Events = downLog.add
		y := New(o)
		if err := y.Down(t.Context(), p.Name, DownOptions{Volumes: true}); err != nil {
			t.Errorf("%s: down: %v", name, err)
		}
		if err := res.Supervisor.Stop(); err != nil {
			t.Errorf("%s: supervisor: %v", name, err)
		}
		x.Close()
		y.Close()
		e.assertGone(t, p.Name)
		foldtest.CheckGoroutines(t, name, before)
		if len(upLog.errs)+len(downLog.errs) > 0 {
			t.Errorf("%s: errors reported: %q %q", name, upLog.errs, downLog.errs)
		}
		return upLog.String(), downLog.String()
	}
	realUp, realDown := round("real engine", e.o)
	o := e.o
	fake := containerstest.New("foldup-test/busybox:1")
	o.Engine = fake
	fakeUp, fakeDown := round("fake engine", o)
	for _, c := range []struct{ what, got, want string }{
		{"up, real engine", realUp, want},
		{"up, fake engine", fakeUp, want},
		{"down, real engine", realDown, wantDown},
		{"down, fake engine", fakeDown, wantDown},
	} {
		if c.got != c.want {
			t.Errorf("%s reported:\n%s\nwant:\n%s", c.what, c.got, c.want)
		}
	}
	if calls := strings.Join(fake.Calls(), "\n"); !strings.Contains(calls, "ContainerCreate ev-db-1\nContainerStart ev-db-1") || !strings.Contains(calls, "NetworkRemove ev_lan") {
		t.Errorf("the fake engine was asked:\n%s", calls)
	}
}
