package vmimage

import (
	"fmt"
	"io"
	"time"

	"github.com/foldup/foldup/internal/term"
)

// Bar returns a progress function for Fetch that reports the download of
// name on w:
//
//	Downloading debian-12.qcow2 12.3MiB/40.0MiB 31%
//
// On a terminal it rewrites one line in place, at most ten times a second;
// elsewhere (a log, CI) it prints a line every five seconds. Either way it
// ends with "Downloaded NAME SIZE" and a newline once done reaches total,
// and then prints nothing more. It makes no output for a Fetch that finds
// the image in the cache. The function is for one Fetch at a time.
func Bar(w io.Writer, name string) func(done, total int64) {
	b := &bar{w: w, name: name, tty: term.Is(w), now: time.Now}
	return b.update
}

type bar struct {
	w     io.Writer
	name  string
	tty   bool
	now   func() time.Time
	last  time.Time // when it last printed; zero before the first line
	ended bool      // printed the final line
}

func (b *bar) update(done, total int64) {
	if b.ended {
		return
	}
	if total >= 0 && done >= total {
		b.ended = true
		b.print(fmt.Sprintf("Downloaded %s %s", b.name, size(done)), true)
		return
	}
	every := 5 * time.Second
	if b.tty {
		every = 100 * time.Millisecond
	}
	now := b.now()
	if !b.last.IsZero() && now.Sub(b.last) < every {
		return
	}
	b.last = now
	line := fmt.Sprintf("Downloading %s %s", b.name, size(done))
	if total > 0 {
		line += fmt.Sprintf("/%s %d%%", size(total), done*100/total)
	}
	b.print(line, false)
}

func (b *bar) print(line string, final bool) {
	switch {
	case !b.tty:
		fmt.Fprintln(b.w, line)
	case final:
		fmt.Fprintf(b.w, "\r%s\x1b[K\n", line) // \x1b[K: erase what a longer line left
	default:
		fmt.Fprintf(b.w, "\r%s\x1b[K", line)
	}
}

// size formats n bytes in binary units with one decimal: 12.3MiB.
func size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%dB", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	}
}
