// Package term tells whether a writer is a terminal, and its size.
package term

import (
	"io"
	"os"
)

// Size is a terminal's size in character cells.
type Size struct{ Width, Height int }

// Get returns the size of the terminal w writes to, and false if w is not
// a terminal that can move the cursor: not a terminal at all, or one
// whose $TERM is "dumb". A terminal that reports no size is taken as
// 80×24.
func Get(w io.Writer) (Size, bool) {
	if os.Getenv("TERM") == "dumb" {
		return Size{}, false
	}
	s, ok := get(w)
	if !ok {
		return Size{}, false
	}
	if s.Width <= 0 {
		s.Width = 80
	}
	if s.Height <= 0 {
		s.Height = 24
	}
	return s, true
}

// Is reports whether w (a writer or a reader) is a terminal, whatever
// $TERM says.
func Is(w any) bool {
	_, ok := get(w)
	return ok
}

func get(w any) (Size, bool) {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return Size{}, false
	}
	return size(int(f.Fd()))
}
