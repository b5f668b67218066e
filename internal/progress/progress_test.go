package progress

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/foldup/foldup/executor"
	"github.com/foldup/foldup/internal/term"
	"github.com/foldup/foldup/internal/vtscreen"
)

// obj reports one object's events to a renderer, as the executor does.
type obj struct {
	r          *Renderer
	kind, name string
	started    time.Time
}

func start(r *Renderer, kind, name string) *obj {
	return &obj{r: r, kind: kind, name: name, started: time.Now()}
}

func (o *obj) send(status string, state executor.EventState, err error) {
	o.r.Event(executor.Event{Kind: o.kind, Name: o.name, Status: status, State: state, Err: err, Started: o.started, Time: time.Now()})
}
func (o *obj) update(status string) { o.send(status, executor.EventWorking, nil) }
func (o *obj) done(status string)   { o.send(status, executor.EventDone, nil) }
func (o *obj) fail(err error)       { o.send("Error", executor.EventFailed, err) }

func event(r *Renderer, kind, name, status string) {
	start(r, kind, name).done(status)
}

func note(r *Renderer, msg string) { r.Event(executor.Event{Name: msg, State: executor.EventNote}) }
func warn(r *Renderer, msg string) { r.Event(executor.Event{Name: msg, State: executor.EventWarning}) }

// TestProgressTTY: the block is redrawn in place, so the screen holds
// each object once, in the order it first reported, with its last status;
// a note lands above the block; lines fit the terminal's width.
func TestProgressTTY(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	s := vtscreen.New(t)
	p := New(s, "tty")
	p.Operation = "up"
	p.tty.size = term.Size{Width: 60, Height: 24}
	net := start(p, "Network", "demo_lan")
	net.update("Creating")
	net.done("Created")
	db := start(p, "Container", "demo-db-1")
	db.update("Starting")
	web := start(p, "Container", "demo-web-1-with-a-name-far-too-long-for-the-terminal")
	web.update("Waiting")
	note(p, "Waiting for another foldup to finish with project demo")
	time.Sleep(3 * ttyRefresh) // the spinner turns
	db.update("Healthy")
	db.done("Started")
	web.fail(errors.New("exit status 1:\nno such file"))
	event(p, "Volume", "demo_data", "Created")
	p.Close()
	p.Close() // a second time draws nothing
	event(p, "Volume", "late", "Removed")

	want := `Waiting for another foldup to finish with project demo
[+] up 4/4
 ✔ Network demo_lan                            Created
 ✔ Container demo-db-1                         Started
 ✘ Container demo-web-1-with-a-name-far-too... Error
 ✔ Volume demo_data                            Created
Volume late  Removed
`
	got := regexp.MustCompile(` +[0-9]+\.[0-9]s\n`).ReplaceAllString(s.Text(), "\n")
	if got != want {
		t.Errorf("screen:\n%s\nwant:\n%s", s.Text(), want)
	}
	for _, l := range s.Lines() {
		if n := utf8.RuneCountInString(l); n > 59 {
			t.Errorf("line of %d characters on a terminal of 60: %q", n, l)
		}
	}
	if !strings.Contains(s.Raw.String(), spinner[1]) {
		t.Errorf("the spinner did not turn while nothing reported: no %s in %q", spinner[1], s.Raw.String())
	}
	if s.CursorUps < 5 {
		t.Errorf("the block was redrawn %d times, want one per change at least", s.CursorUps)
	}
	if !regexp.MustCompile(`(?m)^ ✔ Container demo-db-1 +Started +(0\.[3-9]|[1-9][0-9]*\.[0-9])s$`).MatchString(s.Text()) {
		t.Errorf("no timer at the right edge:\n%s", s.Text())
	}
}

// TestProgressTTYTall: while the block is live it never reaches the
// terminal's top (the cursor could not come back above it), finished
// lines giving way first; the final frame shows every line.
func TestProgressTTYTall(t *testing.T) {
	s := vtscreen.New(t)
	p := New(s, "tty")
	p.tty.size = term.Size{Width: 80, Height: 6}
	var evs []*obj
	for i := range 10 {
		ev := start(p, "Container", fmt.Sprintf("c%d", i))
		ev.update("Creating")
		evs = append(evs, ev)
		if i%2 == 0 {
			ev.done("Created")
		}
		if p.tty.drawn > 5 {
			t.Fatalf("a live block of %d lines on a terminal of 6", p.tty.drawn)
		}
	}
	// The running lines are the ones shown.
	frame := strings.Join(p.tty.render(time.Now()), "\n")
	for _, name := range []string{"c5", "c7", "c9"} {
		if !strings.Contains(frame, "Container "+name+" ") {
			t.Errorf("running %s not in the live block:\n%s", name, frame)
		}
	}
	if s.MaxUp > 5 {
		t.Errorf("the cursor went up %d lines on a terminal of 6", s.MaxUp)
	}
	for _, ev := range evs {
		ev.done("Started")
	}
	p.Close()
	got := s.Text()
	if !strings.HasPrefix(got, "[+] Running 10/10\n") || strings.Count(got, "✔ Container c") != 10 {
		t.Errorf("final frame:\n%s", got)
	}
}

// TestProgressModes: auto is plain on anything but a terminal; plain and
// json print one line per change and no escape sequence.
func TestProgressModes(t *testing.T) {
	for _, mode := range []string{"", "auto", "plain"} {
		var b bytes.Buffer
		p := New(&b, mode)
		ev := start(p, "Network", "demo_lan")
		ev.update("Creating")
		ev.done("Created")
		p.Close()
		if got, want := b.String(), "Network demo_lan  Creating\nNetwork demo_lan  Created\n"; got != want {
			t.Errorf("mode %q printed %q, want %q", mode, got, want)
		}
	}
	var b bytes.Buffer
	p := New(&b, "json")
	start(p, "VM", "vm1").fail(errors.New("no kernel"))
	p.Close()
	if got := b.String(); !strings.Contains(got, `{"id":"VM vm1","text":"Error","status":"no kernel","kind":"VM","name":"vm1","foldup_status":"Error",`) ||
		!strings.Contains(got, `"error":"no kernel"`) || strings.Contains(got, "\x1b") {
		t.Errorf("json printed %q", got)
	}
	b.Reset()
	p = New(&b, "quiet")
	event(p, "Network", "demo_lan", "Created")
	warn(p, "x-foldup.foo is not supported")
	if got := b.String(); got != "warning: x-foldup.foo is not supported\n" {
		t.Errorf("quiet printed %q", got)
	}
}

// TestProgressTTYLayout: rows as compose v5 lays them out: kind and name
// padded to the widest, one space, the status and an error's words, the
// timer at the right edge; colours as compose's (green done, bold red
// error, yellow spinner, blue timer); a live block too tall for the
// terminal says how many rows it leaves out.
func TestProgressTTYLayout(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	v := newTTYView(term.Size{Width: 61, Height: 24}, false)
	v.operation = "down"
	v.lines = []*ttyLine{
		{kind: "Container", name: "demo-web-1", status: "Removed", state: lineDone, started: t0, ended: t0.Add(600 * time.Millisecond)},
		{kind: "Network", name: "demo_default", status: "Removing", state: lineRunning, started: t0.Add(time.Second)},
		{kind: "VM", name: "box", status: "Error", err: "qemu:\nexited 1", state: lineFailed, started: t0, ended: t0.Add(12300 * time.Millisecond)},
	}
	got := strings.Join(v.render(t0.Add(3500*time.Millisecond)), "\n")
	want := `[+] down 2/3
 ✔ Container demo-web-1 Removed                         0.6s
 ⠋ Network demo_default Removing                        2.5s
 ✘ VM box               Error qemu: exited 1           12.3s`
	if got != want {
		t.Errorf("frame:\n%s\nwant:\n%s", got, want)
	}

	v.color = true
	got = strings.Join(v.render(t0.Add(3500*time.Millisecond)), "\n")
	for _, w := range []string{"\x1b[32m✔\x1b[0m", "\x1b[32mRemoved\x1b[0m", "\x1b[33m⠋\x1b[0m", "\x1b[1;31m✘\x1b[0m",
		"\x1b[1;31mError\x1b[0m", "\x1b[34m12.3s\x1b[0m"} {
		if !strings.Contains(got, w) {
			t.Errorf("no %q in the coloured frame %q", w, got)
		}
	}

	v.color = false
	v.size.Height = 4
	got = strings.Join(v.render(t0.Add(3500*time.Millisecond)), "\n")
	if want := "[+] down 2/3\n ⠋ Network demo_default Removing                        2.5s\n ... 2 more"; got != want {
		t.Errorf("tall frame:\n%s\nwant:\n%s", got, want)
	}
}
