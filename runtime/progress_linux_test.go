package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/foldup/foldup/internal/term"
)

// screen is what a terminal shows after the bytes written to it: enough
// of one for progress's output (text, CR, LF, cursor up, erase down, SGR
// colours ignored). It fails on any other escape sequence.
type screen struct {
	t         *testing.T
	lines     []string
	row, col  int
	maxUp     int // the most lines the cursor went up in one move
	cursorUps int
	raw       bytes.Buffer
}

var csi = regexp.MustCompile(`^\x1b\[([0-9;?]*)([A-Za-z])`)

func (s *screen) Write(p []byte) (int, error) {
	s.raw.Write(p)
	b := string(p)
	for len(b) > 0 {
		switch {
		case b[0] == '\x1b':
			m := csi.FindStringSubmatch(b)
			if m == nil {
				s.t.Fatalf("unknown escape sequence at %q", b[:min(len(b), 10)])
			}
			b = b[len(m[0]):]
			switch m[2] {
			case "A":
				n, _ := strconv.Atoi(m[1])
				s.row = max(s.row-max(n, 1), 0)
				s.maxUp = max(s.maxUp, n)
				s.cursorUps++
			case "J":
				s.lines = s.lines[:min(len(s.lines), s.row)]
				if s.col > 0 {
					s.t.Fatalf("erase down from column %d: progress erases whole lines", s.col)
				}
			case "m":
			default:
				s.t.Fatalf("unexpected escape sequence %q", m[0])
			}
		case b[0] == '\n':
			s.row++
			s.col = 0
			b = b[1:]
		case b[0] == '\r':
			s.col = 0
			b = b[1:]
		default:
			r, n := utf8.DecodeRuneInString(b)
			b = b[n:]
			for len(s.lines) <= s.row {
				s.lines = append(s.lines, "")
			}
			line := []rune(s.lines[s.row])
			for len(line) <= s.col {
				line = append(line, ' ')
			}
			line[s.col] = r
			s.lines[s.row] = string(line)
			s.col++
		}
	}
	return len(p), nil
}

// text is the screen's content, one line per line, trailing spaces cut.
func (s *screen) text() string {
	var b strings.Builder
	for _, l := range s.lines {
		b.WriteString(strings.TrimRight(l, " ") + "\n")
	}
	return b.String()
}

// TestProgressTTY: the block is redrawn in place, so the screen holds
// each object once, in the order it first reported, with its last status;
// a note lands above the block; lines fit the terminal's width.
func TestProgressTTY(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	s := &screen{t: t}
	p := newProgress(s, "tty")
	p.tty.size = term.Size{Width: 60, Height: 24}
	net := p.start("Network", "demo_lan")
	net.update("Creating")
	net.done("Created")
	db := p.start("Container", "demo-db-1")
	db.update("Starting")
	web := p.start("Container", "demo-web-1-with-a-name-far-too-long-for-the-terminal")
	web.update("Waiting")
	p.note("Waiting for another foldup to finish with project demo")
	time.Sleep(3 * ttyRefresh) // the spinner turns
	db.update("Healthy")
	db.done("Started")
	web.fail(errors.New("exit status 1:\nno such file"))
	p.event("Volume", "demo_data", "Created")
	p.close()
	p.close() // a second time draws nothing
	p.event("Volume", "late", "Removed")

	want := `Waiting for another foldup to finish with project demo
[+] Running 4/4
 ✔ Network demo_lan                          Created
 ✔ Container demo-db-1                       Started
 ✘ Container demo-web-1-with-a-name-far-to…  Error: exit st
 ✔ Volume demo_data                          Created
Volume late  Removed
`
	got := regexp.MustCompile(` +[0-9]+\.[0-9]s\n`).ReplaceAllString(s.text(), "\n")
	if got != want {
		t.Errorf("screen:\n%s\nwant:\n%s", s.text(), want)
	}
	for _, l := range s.lines {
		if n := utf8.RuneCountInString(l); n > 59 {
			t.Errorf("line of %d characters on a terminal of 60: %q", n, l)
		}
	}
	if !strings.Contains(s.raw.String(), spinner[1]) {
		t.Errorf("the spinner did not turn while nothing reported: no %s in %q", spinner[1], s.raw.String())
	}
	if s.cursorUps < 5 {
		t.Errorf("the block was redrawn %d times, want one per change at least", s.cursorUps)
	}
	if !regexp.MustCompile(`(?m)^ ✔ Container demo-db-1 +Started +(0\.[3-9]|[1-9][0-9]*\.[0-9])s$`).MatchString(s.text()) {
		t.Errorf("no timer at the right edge:\n%s", s.text())
	}
}

// TestProgressTTYTall: while the block is live it never reaches the
// terminal's top (the cursor could not come back above it), finished
// lines giving way first; the final frame shows every line.
func TestProgressTTYTall(t *testing.T) {
	s := &screen{t: t}
	p := newProgress(s, "tty")
	p.tty.size = term.Size{Width: 80, Height: 6}
	var evs []*progressEvent
	for i := range 10 {
		ev := p.start("Container", fmt.Sprintf("c%d", i))
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
	if s.maxUp > 5 {
		t.Errorf("the cursor went up %d lines on a terminal of 6", s.maxUp)
	}
	for _, ev := range evs {
		ev.done("Started")
	}
	p.close()
	got := s.text()
	if !strings.HasPrefix(got, "[+] Running 10/10\n") || strings.Count(got, "✔ Container c") != 10 {
		t.Errorf("final frame:\n%s", got)
	}
}

// TestProgressModes: auto is plain on anything but a terminal; plain and
// json print one line per change and no escape sequence.
func TestProgressModes(t *testing.T) {
	for _, mode := range []string{"", "auto", "plain"} {
		var b bytes.Buffer
		p := newProgress(&b, mode)
		ev := p.start("Network", "demo_lan")
		ev.update("Creating")
		ev.done("Created")
		p.close()
		if got, want := b.String(), "Network demo_lan  Creating\nNetwork demo_lan  Created\n"; got != want {
			t.Errorf("mode %q printed %q, want %q", mode, got, want)
		}
	}
	var b bytes.Buffer
	p := newProgress(&b, "json")
	p.start("VM", "vm1").fail(errors.New("no kernel"))
	p.close()
	if got := b.String(); !strings.Contains(got, `"error":"no kernel"`) || strings.Contains(got, "\x1b") {
		t.Errorf("json printed %q", got)
	}
	b.Reset()
	p = newProgress(&b, "quiet")
	p.event("Network", "demo_lan", "Created")
	p.warn("x-foldup.foo is not supported")
	if got := b.String(); got != "warning: x-foldup.foo is not supported\n" {
		t.Errorf("quiet printed %q", got)
	}
}
