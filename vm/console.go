//go:build linux

package vm

import (
	"bufio"
	"bytes"
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

// ConsoleTimes is where the console log's time stamps are.
func (f Files) ConsoleTimes() string { return filepath.Join(f.State, "console.times") }

// RotateConsole rotates the console log once it is over max bytes. qemu
// holds it open for appending, so it is copied, then truncated in place
// (logrotate's copytruncate): qemu's next write lands at the new end.
// Its stamps move to console.times.1.
func RotateConsole(f Files, max int64) (bool, error) {
	log := f.ConsoleLog()
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
	if err := os.Rename(f.ConsoleTimes(), f.ConsoleTimes()+".1"); err != nil && !os.IsNotExist(err) {
		return true, err
	}
	return true, os.Truncate(log, 0)
}

// ConsoleLine is one line of a console log and when it was printed (zero:
// not known).
type ConsoleLine struct {
	Text string // without \r, with its \n unless it is the last, unfinished one
	At   time.Time
}

// ReadConsole reads a console log and its stamps as lines, and says how
// many bytes of the log it read: where to go on from (the lines' text has
// no \r, so their lengths do not add up to it).
func ReadConsole(log, times string) ([]ConsoleLine, int64, error) {
	b, err := os.ReadFile(log)
	if err != nil {
		return nil, 0, err
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
	var out []ConsoleLine
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
		out = append(out, ConsoleLine{strings.ReplaceAll(string(b[off:next]), "\r", ""), at})
		off = next
	}
	return out, int64(len(b)), nil
}

// vmLogs writes a VM's serial console, as logs does a container's output:
// the last lo.Tail lines (all by default, the rotated log's included),
// with their time stamps if asked, then, with Follow, what comes until
// ctx ends (stamped as it is read).
