//go:build linux

package runtime

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints what up and down do, one line per change of state, as
// docker compose's plain progress does:
//
//	Network demo_lan  Creating
//	Network demo_lan  Created
//
// or as JSON lines ({"kind":...,"name":...,"status":...}) for tools.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	mode string // plain, json, quiet
}

func newProgress(w io.Writer, mode string) *progress {
	if mode == "" {
		mode = "plain"
	}
	return &progress{w: w, mode: mode}
}

type progressEvent struct {
	p          *progress
	kind, name string
}

func (p *progress) start(kind, name string) *progressEvent {
	return &progressEvent{p: p, kind: kind, name: name}
}

func (p *progress) event(kind, name, status string) {
	p.print(kind, name, status, "")
}

// note prints a message about the run (none with --progress quiet).
func (p *progress) note(msg string) { p.message(msg, "", false) }

// warn prints a warning, in every mode: "warning: msg", or JSON.
func (p *progress) warn(msg string) { p.message(msg, "warning: ", true) }

func (p *progress) message(msg, prefix string, evenQuiet bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.mode == "json":
		json.NewEncoder(p.w).Encode(map[string]string{"level": "warning", "message": msg})
	case p.mode != "quiet" || evenQuiet:
		fmt.Fprintln(p.w, prefix+msg)
	}
}

func (p *progress) print(kind, name, status, errText string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case "quiet":
	case "json":
		m := map[string]string{"kind": kind, "name": name, "status": status, "time": time.Now().UTC().Format(time.RFC3339Nano)}
		if errText != "" {
			m["error"] = errText
		}
		json.NewEncoder(p.w).Encode(m)
	default:
		if errText != "" {
			fmt.Fprintf(p.w, "%s %s  %s: %s\n", kind, name, status, errText)
			return
		}
		fmt.Fprintf(p.w, "%s %s  %s\n", kind, name, status)
	}
}

func (e *progressEvent) update(status string) { e.p.print(e.kind, e.name, status, "") }

func (e *progressEvent) done(status string) { e.p.print(e.kind, e.name, status, "") }

// fail reports err against the event and returns it.
func (e *progressEvent) fail(err error) error {
	e.p.print(e.kind, e.name, "Error", err.Error())
	return err
}
