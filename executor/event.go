package executor

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/foldup/foldup/spec"
)

// Event is one change of state of an object that up, down or a verb acts
// on (a network, container, VM, volume, the firewall, the supervisor) or,
// when Kind is empty, a message about the run. Options.Events receives
// them; internal/progress draws them as docker compose does.
type Event struct {
	Kind   string     // Network, Container, VM, Volume, Firewall, Supervisor; "" for a message
	Name   string     // the object's name; the message, for a message
	Status string     // Creating, Started, Removed, Error, Canceled, ...
	State  EventState // whether its operation goes on, is done or failed
	Err    error      // why it failed (State EventFailed)
	// Started is when the operation on the object began; Time, when this
	// happened.
	Started, Time time.Time
}

// EventState is where an object's operation is, or what a message is.
type EventState int

// Event states.
const (
	EventWorking EventState = iota
	EventDone
	EventFailed
	EventNote    // a message about the run ("Waiting for another foldup...")
	EventWarning // a message shown even with --progress quiet
)

// String renders the event as a line of plain progress:
//
//	Network demo_lan  Created
//	Container demo-web-1  Error: exit status 1
//	warning: x-foldup.foo is not supported
func (e Event) String() string {
	switch {
	case e.State == EventWarning:
		return "warning: " + e.Name
	case e.State == EventNote:
		return e.Name
	case e.Err != nil:
		return fmt.Sprintf("%s %s  %s: %s", e.Kind, e.Name, e.Status, e.Err)
	}
	return fmt.Sprintf("%s %s  %s", e.Kind, e.Name, e.Status)
}

// ObjectError is an error of one object an operation acted on: it names
// the object, once.
type ObjectError struct {
	Kind, Name string
	Err        error
}

func (e *ObjectError) Error() string {
	return strings.ToLower(e.Kind) + " " + e.Name + ": " + e.Err.Error()
}

func (e *ObjectError) Unwrap() error { return e.Err }

// objectError wraps err to name its object, unless it names one already:
// an ObjectError, or an error positioned in the project's files.
func objectError(kind, name string, err error) error {
	var oe *ObjectError
	var se *spec.Error
	var sl spec.ErrorList
	if errors.As(err, &oe) || errors.As(err, &se) || errors.As(err, &sl) {
		return err
	}
	return &ObjectError{Kind: kind, Name: name, Err: err}
}
