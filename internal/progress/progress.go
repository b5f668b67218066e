// Package progress draws the events of up, down and the verbs
// (executor.Event) as docker compose draws its progress, in one of its
// modes.
package progress

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/foldup/foldup/executor"
	"github.com/foldup/foldup/internal/term"
)

// A Renderer prints what up, down, start, stop and restart do, as docker
// compose does, in one of four modes. plain prints one line per change of
// state, for logs and CI:
//
//	Network demo_lan  Creating
//	Network demo_lan  Created
//
// tty draws a block of one line per object under a "[+] up 2/3"
// header and redraws it in place ten times a second, with a spinner and a
// timer. json prints one JSON object per change of state, for tools, with
// compose's keys ({"id": "Container web-1", "text": "Started", "status":
// the error if any}; messages {"tail": true, "text"}) and foldup's beside
// them ("kind", "name", "foldup_status", "time", "error"; "level",
// "message"). quiet prints warnings only.
//
// Mode "auto" (or "") is tty when the writer is a terminal, plain when not.
// A Renderer in tty mode must be closed, which draws its final state.
type Renderer struct {
	// Operation is the verb tty mode's header names, as compose v5's
	// does: "[+] up 2/3". Set it before the first event; "" is "Running",
	// compose v2's word.
	Operation string

	mu   sync.Mutex
	w    io.Writer
	mode string
	tty  *ttyView // mode tty only
}

// jsonLine is one line of --progress json: compose's keys (its
// jsonMessage: tail, id, text, status), then foldup's own.
type jsonLine struct {
	Tail   bool   `json:"tail,omitempty"`
	ID     string `json:"id,omitempty"`
	Text   string `json:"text,omitempty"`
	Status string `json:"status,omitempty"`

	Kind         string `json:"kind,omitempty"`
	Name         string `json:"name,omitempty"`
	FoldupStatus string `json:"foldup_status,omitempty"`
	Time         string `json:"time,omitempty"`
	Error        string `json:"error,omitempty"`
	Level        string `json:"level,omitempty"`
	Message      string `json:"message,omitempty"`
}

// Modes are the values --progress takes.
var Modes = []string{"auto", "tty", "plain", "json", "quiet"}

// New returns a renderer writing to w in mode.
func New(w io.Writer, mode string) *Renderer {
	p := &Renderer{w: w, mode: mode}
	size, isTTY := term.Get(w)
	switch {
	case mode == "tty" || (mode == "auto" || mode == "") && isTTY:
		p.mode = "tty"
		if !isTTY {
			size = term.Size{Width: 80, Height: 24}
		}
		p.tty = newTTYView(size, os.Getenv("NO_COLOR") == "") // no-color.org
	case mode == "auto" || mode == "":
		p.mode = "plain"
	}
	return p
}

// Close stops the redrawing of tty mode and draws the final state. It
// does nothing in other modes, and nothing the second time.
func (p *Renderer) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty == nil || p.tty.closed {
		return
	}
	p.tty.closed = true
	if p.tty.ticker != nil {
		p.tty.ticker.Stop()
		close(p.tty.stop)
	}
	p.drawLocked("")
}

// Event draws e. It is executor.Options.Events.
func (p *Renderer) Event(e executor.Event) {
	switch e.State {
	case executor.EventNote:
		p.message(e.Name, "", "info", false)
	case executor.EventWarning:
		p.message(e.Name, "warning: ", "warning", true)
	default:
		errText := ""
		if e.Err != nil {
			errText = e.Err.Error()
		}
		p.print(e.Kind, e.Name, e.Status, errText, lineState(e.State), e.Started)
	}
}

func (p *Renderer) message(msg, prefix, level string, evenQuiet bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.mode == "json":
		// compose's tail message, foldup's level and message beside it.
		json.NewEncoder(p.w).Encode(jsonLine{Tail: true, Text: msg, Level: level, Message: msg})
	case p.mode == "tty" && !p.tty.closed:
		// Above the block, which is drawn again under it.
		p.drawLocked(prefix + msg + "\n")
	case p.mode != "quiet" || evenQuiet:
		fmt.Fprintln(p.w, prefix+msg)
	}
}

func (p *Renderer) print(kind, name, status, errText string, state lineState, started time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case "quiet":
	case "json":
		// compose v5's keys (id, text, status), foldup's beside them.
		json.NewEncoder(p.w).Encode(jsonLine{ID: kind + " " + name, Text: status, Status: errText,
			Kind: kind, Name: name, FoldupStatus: status, Time: time.Now().UTC().Format(time.RFC3339Nano), Error: errText})
	case "tty":
		if p.tty.closed {
			// Late news, after the final frame: as plain prints it.
			p.plainLocked(kind, name, status, errText)
			return
		}
		p.tty.operation = cmp.Or(p.Operation, "Running")
		p.tty.set(kind, name, status, errText, state, started)
		if p.tty.ticker == nil {
			p.tty.ticker = time.NewTicker(ttyRefresh)
			p.tty.stop = make(chan struct{})
			go p.tick(p.tty.ticker, p.tty.stop)
		}
		p.drawLocked("")
	default:
		p.plainLocked(kind, name, status, errText)
	}
}

func (p *Renderer) plainLocked(kind, name, status, errText string) {
	if errText != "" {
		fmt.Fprintf(p.w, "%s %s  %s: %s\n", kind, name, status, errText)
		return
	}
	fmt.Fprintf(p.w, "%s %s  %s\n", kind, name, status)
}

// tick redraws the block until stop is closed, for the spinner and the
// timers.
func (p *Renderer) tick(t *time.Ticker, stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.mu.Lock()
			if !p.tty.closed {
				p.tty.frame++
				p.drawLocked("")
			}
			p.mu.Unlock()
		}
	}
}

// drawLocked writes, in one write, what replaces the block drawn last:
// above (lines that stay in the scrollback) and then the block now.
func (p *Renderer) drawLocked(above string) {
	v := p.tty
	if len(v.lines) == 0 && above == "" {
		return
	}
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn) // to the block's first line
	}
	b.WriteString("\x1b[J") // and clear from there down
	b.WriteString(above)
	lines := v.render(time.Now())
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	v.drawn = len(lines)
	io.WriteString(p.w, b.String())
}

// ttyRefresh is how often tty mode redraws its block.
const ttyRefresh = 100 * time.Millisecond

type lineState int

const (
	lineRunning = lineState(executor.EventWorking)
	lineDone    = lineState(executor.EventDone)
	lineFailed  = lineState(executor.EventFailed)
)

// ttyView is the state tty mode draws: one line per object (kind and
// name), in the order they first reported.
type ttyView struct {
	operation string // the header's: up, down, start, ...
	size      term.Size
	color     bool
	lines     []*ttyLine
	index     map[string]*ttyLine
	drawn     int // lines of the block on the screen
	frame     int // of the spinner
	closed    bool
	ticker    *time.Ticker
	stop      chan struct{}
}

type ttyLine struct {
	kind, name, status, err string
	state                   lineState
	started, ended          time.Time
}

func newTTYView(size term.Size, color bool) *ttyView {
	return &ttyView{size: size, color: color, index: map[string]*ttyLine{}}
}

func (v *ttyView) set(kind, name, status, errText string, state lineState, started time.Time) {
	key := kind + " " + name
	l := v.index[key]
	if l == nil {
		l = &ttyLine{kind: kind, name: name, started: started}
		v.index[key] = l
		v.lines = append(v.lines, l)
	} else if l.state != lineRunning {
		// The same object again (recreated, say): a new timer.
		l.started = started
	}
	l.status, l.err, l.state = status, errText, state
	l.ended = time.Time{}
	if state != lineRunning {
		l.ended = time.Now()
	}
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// The SGR codes of compose v5's colours: yellow spinner, green done,
// bold red error, blue timer.
const (
	colorWorking = "33"
	colorDone    = "32"
	colorError   = "1;31"
	colorTimer   = "34"
)

// render returns the block's lines at now, laid out as compose v5 lays
// out its own (cmd/display's tty layout):
//
//	[+] up 2/3
//	 ✔ Network demo_lan     Created    0.1s
//	 ⠹ Container demo-web-1 Starting   1.2s
//
// the header names the operation; each row is the object's kind and
// name, padded to the widest, one space, its status (and an error's
// words), and its timer at the right edge. Names are cut ("...") before
// statuses are, to keep room for a status of up to 20 characters. One
// column is left free at the right, where compose writes to the last: a
// terminal without deferred wrap would scroll there, and the cursor
// arithmetic with it. While the block is live it is shorter than the
// terminal (the cursor cannot go back above the top): finished lines
// give way first, then the oldest running ones, and " ... N more" says
// how many are not shown; the final frame shows them all.
func (v *ttyView) render(now time.Time) []string {
	done := 0
	for _, l := range v.lines {
		if l.state != lineRunning {
			done++
		}
	}
	shown, more := v.lines, 0
	if room := v.size.Height - 2; !v.closed && len(shown) > room {
		keep := max(room-1, 1) // and a line for " ... N more"
		shown = nil
		skip := len(v.lines) - keep
		for _, l := range v.lines {
			if skip > 0 && l.state != lineRunning {
				skip--
				continue
			}
			shown = append(shown, l)
		}
		shown = shown[max(len(shown)-keep, 0):]
		more = len(v.lines) - len(shown)
	}
	width := v.size.Width - 1
	type row struct {
		icon, color, id, status, details, timer string
	}
	rows := make([]row, 0, len(shown))
	idW, statusW, timerW := 0, 0, 0
	for _, l := range shown {
		r := row{icon: spinner[v.frame%len(spinner)], color: colorWorking, id: l.kind + " " + l.name, status: l.status}
		end := now
		switch l.state {
		case lineDone:
			r.icon, r.color, end = "✔", colorDone, l.ended
		case lineFailed:
			r.icon, r.color, end = "✘", colorError, l.ended
		}
		r.details = strings.Join(strings.Fields(l.err), " ")
		r.timer = fmt.Sprintf("%.1fs", end.Sub(l.started).Seconds())
		idW = max(idW, utf8.RuneCountInString(r.id))
		statusW = max(statusW, utf8.RuneCountInString(r.status))
		timerW = max(timerW, len(r.timer))
		rows = append(rows, r)
	}
	const margin = 3 // " ✔ "
	idW = min(idW, max(width-margin-min(statusW, 20)-2-timerW, 10))

	out := []string{truncate(fmt.Sprintf("[+] %s %d/%d", v.operation, done, len(v.lines)), width)}
	for _, r := range rows {
		var b strings.Builder
		used := 0
		add := func(text, color string) {
			if text == "" {
				return
			}
			text = truncate(text, width-used)
			used += utf8.RuneCountInString(text)
			if color != "" {
				text = v.paint(text, color)
			}
			b.WriteString(text)
		}
		add(" ", "")
		add(r.icon, r.color)
		add(" ", "")
		id := cut(r.id, idW)
		add(id+strings.Repeat(" ", idW-utf8.RuneCountInString(id)), "")
		statusColor := r.color
		if statusColor == colorWorking {
			statusColor = ""
		}
		if budget := width - used - timerW - 2; budget > 0 {
			add(" ", "")
			add(cut(r.status, budget), statusColor)
		}
		if budget := width - used - timerW - 2; r.details != "" && budget >= 5 {
			add(" ", "")
			add(cut(r.details, budget-1), "")
		}
		if fill := width - used - len(r.timer); fill > 0 {
			add(strings.Repeat(" ", fill), "")
			add(r.timer, colorTimer)
		}
		out = append(out, b.String())
	}
	if more > 0 {
		out = append(out, truncate(fmt.Sprintf(" ... %d more", more), width))
	}
	return out
}

// cut shortens s to n characters, ending in "..." when it cut something
// and there is room, as compose does.
func cut(s string, n int) string {
	switch {
	case n <= 0:
		return ""
	case utf8.RuneCountInString(s) <= n:
		return s
	case n <= 3:
		return truncate(s, n)
	}
	return truncate(s, n-3) + "..."
}

// paint wraps s in the SGR attribute code, if colours are on.
func (v *ttyView) paint(s, code string) string {
	if !v.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// truncate cuts s to at most n characters.
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}
