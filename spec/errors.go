package spec

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Pos is a position in an input file. Line and Column are 1-based; zero
// means unknown (the error then names only the file, or nothing).
type Pos struct {
	File   string
	Line   int
	Column int
}

func (p Pos) String() string {
	switch {
	case p.File == "" && p.Line == 0:
		return ""
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Error is one problem in the input, at a position and a field path:
//
//	foldup.yaml:14:9: services.db.networks.lan.ipv4_address: "10.0.0.300" is not an IPv4 address
type Error struct {
	Pos   Pos
	Field string // dotted path, e.g. vms.web.cpus; empty for the whole file
	Msg   string
	err   error // what Msg says, when it wraps another error (Errorf's %w)
}

// Unwrap returns the error the message wraps, if any.
func (e *Error) Unwrap() error { return errors.Unwrap(e.err) }

// Errorf is a positioned error about the field at path, where the
// project's files last set it (Locate): what the planner and the runtime
// find wrong with a file that loaded. %w wraps as fmt.Errorf does.
func (p *Project) Errorf(path []string, format string, args ...any) *Error {
	return p.newError(p.Locate(path...), path, format, args...)
}

// KeyErrorf is Errorf at the key of the mapping entry at path (LocateKey).
func (p *Project) KeyErrorf(path []string, format string, args ...any) *Error {
	return p.newError(p.LocateKey(path...), path, format, args...)
}

func (p *Project) newError(pos Pos, path []string, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Pos: pos, Field: strings.Join(path, "."), Msg: err.Error(), err: err}
}

func (e *Error) Error() string {
	var b strings.Builder
	if s := e.Pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is a list of *Error, sortable by position. Its zero value is an
// empty list ready to use.
type ErrorList []*Error

// Add appends an error.
func (l *ErrorList) Add(pos Pos, field, format string, args ...any) {
	*l = append(*l, &Error{Pos: pos, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Sort orders the list by file, line, column, field and message. Of errors
// at the same position and field only the first added is kept: one mistake
// is often seen by two checks (the schema, then the decoder), and the first
// says it best.
func (l ErrorList) Sort() ErrorList {
	type at struct {
		pos   Pos
		field string
	}
	seen := make(map[at]bool, len(l))
	kept := l[:0]
	for _, e := range l {
		k := at{e.Pos, e.Field}
		if e.Pos.Line != 0 && seen[k] {
			continue
		}
		seen[k] = true
		kept = append(kept, e)
	}
	l = kept
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column),
			cmp.Compare(a.Field, b.Field),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
	return slices.CompactFunc(l, func(a, b *Error) bool { return a.Pos == b.Pos && a.Field == b.Field && a.Msg == b.Msg })
}

// Error prints every error, one a line.
func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns nil for an empty list, else the list sorted, as an error.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l.Sort()
}

// Errors returns the individual errors held by err: the elements of an
// ErrorList, or err itself.
func Errors(err error) []*Error {
	var l ErrorList
	if errors.As(err, &l) {
		return l
	}
	var e *Error
	if errors.As(err, &e) {
		return []*Error{e}
	}
	return nil
}
