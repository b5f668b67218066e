//go:build linux

package executor

import (
	"context"
	"sync"
	"time"
)

// progress sends what up, down and the verbs do to Options.Events, one
// event at a time, as docker compose reports it: one object a line, each
// line's status changing as the object's operation goes on.
type progress struct {
	mu   sync.Mutex
	emit func(Event)
	// run, when set, is the context of the steps being reported: once it
	// is cancelled (another step failed, or the user interrupted), a
	// step's failure is that cancellation, reported by whoever caused
	// it, not an error of its own.
	run context.Context
}

func newProgress(emit func(Event)) *progress {
	if emit == nil {
		emit = func(Event) {}
	}
	return &progress{emit: emit}
}

func (p *progress) send(e Event) {
	e.Time = time.Now()
	if e.Started.IsZero() {
		e.Started = e.Time
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.emit(e)
}

// object is one object's line.
type object struct {
	p          *progress
	kind, name string
	started    time.Time
}

func (p *progress) start(kind, name string) *object {
	return &object{p: p, kind: kind, name: name, started: time.Now()}
}

// event reports a change that is over as soon as it is reported.
func (p *progress) event(kind, name, status string) {
	p.send(Event{Kind: kind, Name: name, Status: status, State: EventDone})
}

// note reports a message about the run.
func (p *progress) note(msg string) { p.send(Event{Name: msg, State: EventNote}) }

// warn reports a warning.
func (p *progress) warn(msg string) { p.send(Event{Name: msg, State: EventWarning}) }

func (o *object) update(status string) {
	o.p.send(Event{Kind: o.kind, Name: o.name, Status: status, State: EventWorking, Started: o.started})
}

func (o *object) done(status string) {
	o.p.send(Event{Kind: o.kind, Name: o.name, Status: status, State: EventDone, Started: o.started})
}

// fail reports err against the object and returns it, naming the object
// (once: an error that names its object already is returned as it is).
// A step that fails because the run was cancelled is reported as
// Canceled, without the error: the step that failed first has reported
// it.
func (o *object) fail(err error) error {
	if o.p.run != nil && o.p.run.Err() != nil {
		o.p.send(Event{Kind: o.kind, Name: o.name, Status: "Canceled", State: EventFailed, Started: o.started})
		return err
	}
	o.p.send(Event{Kind: o.kind, Name: o.name, Status: "Error", State: EventFailed, Err: err, Started: o.started})
	return objectError(o.kind, o.name, err)
}
