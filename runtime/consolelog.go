//go:build linux

package runtime

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A VM's console log is qemu's own (its serial chardev's logfile): exactly
// what the guest printed, written even while no foldup runs, and without
// time stamps. The supervisor keeps those beside it, in console.times: a
// line "OFFSET UNIXNANO" for each stretch of output, when it first saw it
// (within stampEvery). It also rotates the log, past consoleLogMax, to
// console.log.1 (one is kept), and the stamps with it.

func (f vmFiles) consoleTimes() string { return filepath.Join(f.state, "console.times") }

// stampFormat is how logs -t prints a time, as Docker does (in UTC).
const stampFormat = "2006-01-02T15:04:05.000000000Z"

const (
	stampEvery    = 200 * time.Millisecond
	consoleLogMax = 16 << 20
)

// keepConsole stamps and rotates a VM's console log until ctx ends.
// Output from before it started (no supervisor ran) has no stamp of its
// own: logs -t shows the next one for it. It wakes when qemu writes to the
// log (written, from the VM's fileSignals), not on a timer: an idle guest
// costs nothing. A burst of output gets one stamp a stampEvery.
func keepConsole(ctx context.Context, f vmFiles, written <-chan struct{}, logf func(string, ...any)) {
	changed := func() bool { return waitSignal(ctx, written, 0) }
	size := int64(-1)
	for first := true; first || changed(); first = false {
		if rotated, err := rotateConsole(f, consoleLogMax); err != nil {
			logf("rotating the console log", "err", err)
		} else if rotated {
			size = 0
		}
		st, err := os.Stat(f.consoleLog())
		switch {
		case err != nil:
			if size < 0 && os.IsNotExist(err) {
				size = 0 // qemu has not started: its first output gets stamped
			}
			continue
		case size < 0:
			size = st.Size()
			continue
		case st.Size() < size:
			size = 0 // truncated by someone else
		}
		if st.Size() > size {
			line := fmt.Sprintf("%d %d\n", size, time.Now().UnixNano())
			if err := appendFile(f.consoleTimes(), line); err != nil {
				logf("stamping the console log", "err", err)
			}
			size = st.Size()
		}
		if !sleepCtx(ctx, stampEvery) {
			return
		}
	}
}

func appendFile(path, s string) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = fh.WriteString(s)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

// rotateConsole rotates the console log once it is over max bytes. qemu
// holds it open for appending, so it is copied, then truncated in place
// (logrotate's copytruncate): qemu's next write lands at the new end.
// Its stamps move to console.times.1.
func rotateConsole(f vmFiles, max int64) (bool, error) {
	log := f.consoleLog()
	st, err := os.Stat(log)
	if err != nil || st.Size() <= max {
		return false, nil
	}
	src, err := os.Open(log)
	if err != nil {
		return false, err
	}
	defer src.Close()
	tmp := log + ".1.tmp"
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, log+".1")
	}
	if err != nil {
		os.Remove(tmp)
		return false, err
	}
	if err := os.Rename(f.consoleTimes(), f.consoleTimes()+".1"); err != nil && !os.IsNotExist(err) {
		return true, err
	}
	return true, os.Truncate(log, 0)
}

// consoleLine is one line of a console log and when it was printed (zero:
// not known).
type consoleLine struct {
	text string // without \r, with its \n unless it is the last, unfinished one
	at   time.Time
}

// readConsole reads a console log and its stamps as lines.
func readConsole(log, times string) ([]consoleLine, error) {
	b, err := os.ReadFile(log)
	if err != nil {
		return nil, err
	}
	type stamp struct {
		off int64
		at  time.Time
	}
	var stamps []stamp
	if tb, err := os.ReadFile(times); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(tb))
		for sc.Scan() {
			o, t, ok := strings.Cut(sc.Text(), " ")
			off, err1 := strconv.ParseInt(o, 10, 64)
			ns, err2 := strconv.ParseInt(t, 10, 64)
			if ok && err1 == nil && err2 == nil {
				stamps = append(stamps, stamp{off, time.Unix(0, ns)})
			}
		}
	}
	slices.SortStableFunc(stamps, func(a, b stamp) int { return int(a.off - b.off) })
	var out []consoleLine
	for off := 0; off < len(b); {
		end := bytes.IndexByte(b[off:], '\n')
		next := len(b)
		if end >= 0 {
			next = off + end + 1
		}
		// The line's stamp: the last at or before its first byte, else
		// the first after it.
		i, _ := slices.BinarySearchFunc(stamps, int64(off), func(s stamp, o int64) int {
			switch {
			case s.off < o:
				return -1
			case s.off > o:
				return 1
			}
			return 0
		})
		var at time.Time
		switch {
		case i < len(stamps) && stamps[i].off == int64(off):
			at = stamps[i].at
		case i > 0:
			at = stamps[i-1].at
		case i < len(stamps):
			at = stamps[i].at
		}
		out = append(out, consoleLine{strings.ReplaceAll(string(b[off:next]), "\r", ""), at})
		off = next
	}
	return out, nil
}

// vmLogs writes a VM's serial console, as logs does a container's output:
// the last lo.Tail lines (all by default, the rotated log's included),
// with their time stamps if asked, then, with Follow, what comes until
// ctx ends (stamped as it is read).
func vmLogs(ctx context.Context, f vmFiles, lo LogOptions, w *linePrefixer) error {
	lines, err := readConsole(f.consoleLog(), f.consoleTimes())
	if err != nil {
		return err
	}
	var offset int64
	for _, l := range lines {
		offset += int64(len(l.text))
	}
	if old, err := readConsole(f.consoleLog()+".1", f.consoleTimes()+".1"); err == nil {
		lines = append(old, lines...)
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
		w.Write([]byte(stamp(l.at) + l.text))
	}
	if !lo.Follow {
		w.flush()
		return nil
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	atLineStart := len(lines) == 0 || strings.HasSuffix(lines[len(lines)-1].text, "\n")
	for {
		select {
		case <-ctx.Done():
			w.flush()
			return nil
		case <-t.C:
		}
		fh, err := os.Open(f.consoleLog())
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
