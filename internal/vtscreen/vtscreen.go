// Package vtscreen is a terminal for tests: enough of one to show what
// foldup's progress draws (text, CR, LF, cursor up, erase down; SGR
// colours ignored). It fails the test on any other escape sequence.
package vtscreen

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Screen is what a terminal shows after the bytes written to it.
type Screen struct {
	T         testing.TB
	lines     []string
	row, col  int
	MaxUp     int // the most lines the cursor went up in one move
	CursorUps int // how many times it went up
	Raw       bytes.Buffer
}

// New returns an empty screen that fails t on what it cannot show.
func New(t testing.TB) *Screen { return &Screen{T: t} }

var csi = regexp.MustCompile(`^\x1b\[([0-9;?]*)([A-Za-z])`)

func (s *Screen) Write(p []byte) (int, error) {
	s.Raw.Write(p)
	b := string(p)
	for len(b) > 0 {
		switch {
		case b[0] == '\x1b':
			m := csi.FindStringSubmatch(b)
			if m == nil {
				s.T.Fatalf("unknown escape sequence at %q", b[:min(len(b), 10)])
			}
			b = b[len(m[0]):]
			switch m[2] {
			case "A":
				n, _ := strconv.Atoi(m[1])
				s.row = max(s.row-max(n, 1), 0)
				s.MaxUp = max(s.MaxUp, n)
				s.CursorUps++
			case "J":
				s.lines = s.lines[:min(len(s.lines), s.row)]
				if s.col > 0 {
					s.T.Fatalf("erase down from column %d: progress erases whole lines", s.col)
				}
			case "m":
			default:
				s.T.Fatalf("unexpected escape sequence %q", m[0])
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

// Text is the screen's content, one line per line, trailing spaces cut.
func (s *Screen) Text() string {
	var b strings.Builder
	for _, l := range s.lines {
		b.WriteString(strings.TrimRight(l, " ") + "\n")
	}
	return b.String()
}

// Lines are the screen's lines.
func (s *Screen) Lines() []string { return s.lines }
