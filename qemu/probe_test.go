package qemu

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/systest"
)

// TestProbeKernelELF: the probe is an ELF64 x86_64 executable with one
// PT_LOAD at 1 MiB, whose memory also holds the page tables, and a PVH
// note whose entry lies in the loaded code.
func TestProbeKernelELF(t *testing.T) {
	k := ProbeKernel()
	if !bytes.Equal(k, ProbeKernel()) {
		t.Error("ProbeKernel is not deterministic")
	}
	if !HasPVH(k) {
		t.Error("HasPVH(ProbeKernel()) = false")
	}
	f, err := elf.NewFile(bytes.NewReader(k))
	if err != nil {
		t.Fatal(err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Errorf("class %v machine %v type %v, want an ELF64 x86_64 executable", f.Class, f.Machine, f.Type)
	}
	var load, note *elf.Prog
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			if load != nil {
				t.Fatal("more than one PT_LOAD")
			}
			load = p
		case elf.PT_NOTE:
			note = p
		}
	}
	if load == nil || note == nil {
		t.Fatalf("program headers %v: want a PT_LOAD and a PT_NOTE", f.Progs)
	}
	if load.Paddr != probeBase || load.Vaddr != probeBase || load.Off != 0 ||
		load.Filesz != uint64(len(k)) || load.Memsz < load.Filesz {
		t.Errorf("PT_LOAD %+v: want the whole file at %#x", load.ProgHeader, probeBase)
	}
	if load.Memsz < probePD+0x1000-probeBase {
		t.Errorf("PT_LOAD memsz %#x does not cover the page tables (up to %#x)", load.Memsz, probePD+0x1000)
	}

	b, err := io.ReadAll(note.Open())
	if err != nil {
		t.Fatal(err)
	}
	var entry uint64
	found := false
	for len(b) >= 12 {
		nsz, dsz, typ := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
		b = b[12:]
		name := string(b[:nsz])
		b = b[(nsz+3)&^3:]
		desc := b[:dsz]
		b = b[(dsz+3)&^3:]
		if name == "Xen\x00" && typ == 18 {
			if dsz != 8 {
				t.Errorf("PHYS32_ENTRY descriptor of %d bytes, want 8 (qemu 7.2 reads a size_t)", dsz)
			}
			entry, found = binary.LittleEndian.Uint64(desc), true
		}
	}
	if !found {
		t.Fatal("no Xen XEN_ELFNOTE_PHYS32_ENTRY (18) note")
	}
	if entry < load.Paddr || entry >= load.Paddr+load.Filesz || entry != f.Entry {
		t.Errorf("PVH entry %#x (e_entry %#x) not in the loaded file [%#x, %#x)",
			entry, f.Entry, load.Paddr, load.Paddr+load.Filesz)
	}
}

// TestProbeBoot boots the probe under TCG on each x86 machine type: qemu
// must exit with ProbeExitCode, the console showing the 32-bit marker and
// then the 64-bit one.
func TestProbeBoot(t *testing.T) {
	systest.Command(t, "qemu-system-x86_64")
	for _, machine := range []string{"q35", "pc", "microvm"} {
		t.Run(machine, func(t *testing.T) {
			r := runProbe(t, machine, "max")
			t.Logf("-machine %s -accel tcg: exit %d in %v", machine, r.code, r.took.Round(time.Millisecond))
			if r.code != ProbeExitCode {
				t.Errorf("qemu exit status %d (timed out: %v), want ProbeExitCode %d; console %q; stderr %q",
					r.code, r.timedOut, ProbeExitCode, r.console, r.stderr)
			}
			i, j := strings.Index(r.console, ProbeMarker32), strings.Index(r.console, ProbeMarker64)
			if i < 0 || j < i {
				t.Errorf("console %q: want %q, then %q", r.console, ProbeMarker32, ProbeMarker64)
			}
		})
	}
}

// TestProbeNoLongMode is the negative control: on a CPU without long
// mode the probe must not report success (it triple-faults, and with
// -no-reboot qemu exits 0) nor write the 64-bit marker.
func TestProbeNoLongMode(t *testing.T) {
	systest.Command(t, "qemu-system-x86_64")
	r := runProbe(t, "q35", "qemu64,-lm")
	t.Logf("-cpu qemu64,-lm: exit %d (timed out: %v) in %v, console %q",
		r.code, r.timedOut, r.took.Round(time.Millisecond), r.console)
	if r.code == ProbeExitCode {
		t.Errorf("qemu exited with ProbeExitCode on a CPU without long mode")
	}
	if !strings.Contains(r.console, ProbeMarker32) {
		t.Errorf("console %q: want %q (the probe did run)", r.console, ProbeMarker32)
	}
	if strings.Contains(r.console, ProbeMarker64) {
		t.Errorf("console %q has the 64-bit marker on a CPU without long mode", r.console)
	}
}

type probeRun struct {
	code            int // qemu's exit status; -1 when killed
	timedOut        bool
	took            time.Duration
	console, stderr string
}

// runProbe boots ProbeKernel under TCG, as the probe's caller would
// (but for the accelerator), and kills qemu after 20 s.
func runProbe(t *testing.T, machine, cpu string) probeRun {
	t.Helper()
	dir := t.TempDir()
	kernel, console := filepath.Join(dir, "probe.elf"), filepath.Join(dir, "console")
	if err := os.WriteFile(kernel, ProbeKernel(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-machine", machine, "-accel", "tcg", "-cpu", cpu, "-m", "32",
		"-nodefaults", "-display", "none", "-no-reboot",
		"-kernel", kernel, "-device", ProbeDebugExit, "-serial", "file:"+console)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	err := cmd.Run() // CommandContext kills qemu at the deadline
	r := probeRun{took: time.Since(start), timedOut: ctx.Err() != nil, stderr: stderr.String()}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("qemu: %v", err)
	}
	r.code = cmd.ProcessState.ExitCode()
	b, _ := os.ReadFile(console)
	r.console = string(b)
	return r
}
