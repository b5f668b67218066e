//go:build linux

package executor

import (
	"context"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/foldup/foldup/vm"
)

func vmLogs(ctx context.Context, f vm.Files, lo LogOptions, w *linePrefixer) error {
	lines, offset, err := vm.ReadConsole(f.ConsoleLog(), f.ConsoleTimes())
	if err != nil {
		return err
	}
	if old, _, err := vm.ReadConsole(f.ConsoleLog()+".1", f.ConsoleTimes()+".1"); err == nil {
		lines = append(old, lines...)
	}
	if !lo.Since.IsZero() || !lo.Until.IsZero() {
		lines = slices.DeleteFunc(lines, func(l vm.ConsoleLine) bool {
			return l.At.IsZero() || l.At.Before(lo.Since) || (!lo.Until.IsZero() && l.At.After(lo.Until))
		})
	}
	if n, err := strconv.Atoi(lo.Tail); err == nil && n >= 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	stamp := func(at time.Time) string {
		if !lo.Timestamps {
			return ""
		}
		if at.IsZero() {
			return strings.Repeat(" ", len(stampFormat)) + " "
		}
		return at.UTC().Format(stampFormat) + " "
	}
	for _, l := range lines {
		w.Write([]byte(stamp(l.At) + l.Text))
	}
	if !lo.Follow || !lo.Until.IsZero() { // nothing written from now on is before --until
		w.flush()
		return nil
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	atLineStart := len(lines) == 0 || strings.HasSuffix(lines[len(lines)-1].Text, "\n")
	for {
		select {
		case <-ctx.Done():
			w.flush()
			return nil
		case <-t.C:
		}
		fh, err := os.Open(f.ConsoleLog())
		if err != nil {
			continue
		}
		if st, err := fh.Stat(); err == nil && st.Size() < offset {
			offset = 0 // rotated
		}
		fh.Seek(offset, io.SeekStart)
		more, _ := io.ReadAll(fh)
		fh.Close()
		offset += int64(len(more))
		text := strings.ReplaceAll(string(more), "\r", "")
		if lo.Timestamps && text != "" {
			var b strings.Builder
			now := stamp(time.Now())
			for _, piece := range strings.SplitAfter(text, "\n") {
				if piece == "" {
					continue
				}
				if atLineStart {
					b.WriteString(now)
				}
				b.WriteString(piece)
				atLineStart = strings.HasSuffix(piece, "\n")
			}
			text = b.String()
		}
		w.Write([]byte(text))
	}
}

// stampFormat is how logs -t prints a time, as Docker does (in UTC).
const stampFormat = "2006-01-02T15:04:05.000000000Z"
