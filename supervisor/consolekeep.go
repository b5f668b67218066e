//go:build linux

package supervisor

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/foldup/foldup/vm"
)

// keepConsole stamps and rotates a VM's console log until ctx ends.
// Output from before it started (no supervisor ran) has no stamp of its
// own: logs -t shows the next one for it. It wakes when qemu writes to the
// log (written, from the VM's fileSignals), not on a timer: an idle guest
// costs nothing. A burst of output gets one stamp a stampEvery.
func keepConsole(ctx context.Context, f vm.Files, written <-chan struct{}, logf func(string, ...any)) {
	changed := func() bool { return waitSignal(ctx, written, 0) }
	size := int64(-1)
	for first := true; first || changed(); first = false {
		if rotated, err := vm.RotateConsole(f, consoleLogMax); err != nil {
			logf("rotating the console log", "err", err)
		} else if rotated {
			size = 0
		}
		st, err := os.Stat(f.ConsoleLog())
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
			if err := appendFile(f.ConsoleTimes(), line); err != nil {
				logf("stamping the console log", "err", err)
			}
			size = st.Size()
		}
		if !sleepCtx(ctx, stampEvery) {
			return
		}
	}
}

const (
	stampEvery    = 200 * time.Millisecond
	consoleLogMax = 16 << 20
)

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
