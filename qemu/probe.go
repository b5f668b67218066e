package qemu

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"slices"
)

// The probe guest: what ProbeKernel boots, and what it reports.
//
// A /dev/kvm that opens, creates VMs and runs SeaBIOS can still be unable
// to run a 64-bit kernel: under a nested paravirtual hypervisor (PVM) qemu
// aborts with -cpu host ("failed to set MSR 0x10a"), and with its default
// CPU an unmodified guest does reach long mode but then runs about a
// microsecond an instruction, so a Linux kernel spends minutes clearing
// its BSS and looks hung. The probe makes the mode switches such a kernel
// makes, then spins probeSpins times, then reports through isa-debug-exit:
// qemu exiting with ProbeExitCode within a few seconds shows the
// accelerator runs 64-bit guests, and at a usable speed.
const (
	// ProbeDebugExit is the -device that lets the probe end qemu: a write
	// of v to port 0xf4 makes qemu exit with status (v<<1)|1.
	ProbeDebugExit = "isa-debug-exit,iobase=0xf4,iosize=0x04"
	// ProbeExitCode is qemu's exit status once the probe has reached
	// 64-bit long mode and spun there (it writes probeExitValue to
	// ProbeDebugExit).
	ProbeExitCode = probeExitValue<<1 | 1 // 85

	// ProbeMarker32 is what the probe writes to COM1 (0x3f8) on entry,
	// in 32-bit protected mode; ProbeMarker64 what it writes once in
	// 64-bit mode, before it spins. A console with only the first shows a
	// guest lost between the two (paging, EFER.LME, the far jump); one
	// with both but no exit, a guest too slow in 64-bit mode.
	ProbeMarker32 = "probe: 32-bit\n"
	ProbeMarker64 = "probe: 64-bit\n"
)

const (
	probeExitValue = 0x2a
	probeDebugPort = 0xf4
	probeCOM1      = 0x3f8
	// probeSpins is how many times the probe runs a two-instruction loop
	// in 64-bit mode: about 30 ms under TCG and a few natively, but half a
	// minute at the microsecond an instruction of PVM's emulation.
	probeSpins = 1 << 24

	// The image is loaded, as it is in the file, at 1 MiB, physical and
	// virtual, and padded to 8 KiB: qemu reads a -kernel's first 8 KiB
	// into an uninitialised buffer to look for bzImage and multiboot
	// headers, so a shorter file would leave that to stack garbage.
	probeBase     = 0x100000
	probeFileSize = 0x2000
	// The page tables follow the file in memory the PT_LOAD covers
	// (p_memsz > p_filesz); the code zeroes them itself rather than trust
	// the loader to.
	probePML4  = probeBase + probeFileSize
	probePDPT  = probePML4 + 0x1000
	probePD    = probePDPT + 0x1000
	probeMemSz = probePD + 0x1000 - probeBase

	msrEFER = 0xc0000080
)

// ProbeKernel returns a tiny x86_64 guest kernel (8 KiB) for qemu's
// -kernel, booted through the PVH entry point (an ELF with a Xen
// XEN_ELFNOTE_PHYS32_ENTRY note) on -machine q35 or pc. Entered in 32-bit
// protected mode with paging off, it writes ProbeMarker32 to COM1,
// identity-maps the first 2 MiB (PML4 -> PDPT -> PD, one 2 MiB page),
// enables PAE, loads CR3, sets EFER.LME, enables paging, loads a GDT with
// a 64-bit code segment and far-jumps to it; then, in 64-bit mode, it
// writes ProbeMarker64, spins probeSpins times (a speed test: see above),
// checks EFER.LMA and writes a value computed with 64-bit arithmetic to
// ProbeDebugExit, so qemu exits with ProbeExitCode. It also boots on
// -machine microvm, which skips the firmware and so starts fastest.
// Any fault on the way triple-faults (there is no IDT): with -no-reboot
// qemu then exits 0. It needs no stack and no memory beyond 1 MiB + 20 KiB.
func ProbeKernel() []byte {
	img := make([]byte, 64+2*56) // ELF header and two program headers, written last
	addr := func() uint32 { return probeBase + uint32(len(img)) }

	// The PVH note: name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY (18), and
	// the entry address, 8 bytes wide as in Linux (qemu 7.2 reads a
	// size_t from an ELF64's note; later versions a uint32).
	noteOff := len(img)
	img = binary.LittleEndian.AppendUint32(img, 4)  // n_namesz
	img = binary.LittleEndian.AppendUint32(img, 8)  // n_descsz
	img = binary.LittleEndian.AppendUint32(img, 18) // n_type
	img = append(img, "Xen\x00"...)
	entryAt := len(img)
	img = binary.LittleEndian.AppendUint64(img, 0) // the entry, set below
	noteLen := len(img) - noteOff

	// The GDT: a null descriptor and, selector 0x08, a 64-bit code
	// segment (present, ring 0, execute/read, L=1, D=0, G=1).
	gdt := addr()
	img = binary.LittleEndian.AppendUint64(img, 0)
	img = binary.LittleEndian.AppendUint64(img, 0x00af9a000000ffff)
	gdtr := addr() // lgdt's operand: 16-bit limit, 32-bit base
	img = binary.LittleEndian.AppendUint16(img, 2*8-1)
	img = binary.LittleEndian.AppendUint32(img, gdt)
	msg32 := addr()
	img = append(img, ProbeMarker32...)
	msg64 := addr()
	img = append(img, ProbeMarker64...)

	// 32-bit protected mode, paging off, flat segments (the PVH entry state).
	entry32 := addr()
	code32 := slices.Concat(
		op(0xbe), le32(msg32), // mov $msg32, %esi
		op(0xb9), le32(uint32(len(ProbeMarker32))), // mov $len, %ecx
		op(0x66, 0xba), le16(probeCOM1), // mov $0x3f8, %dx
		op(0xf3, 0x6e),            // rep outsb (%esi) -> (%dx)
		op(0xbf), le32(probePML4), // mov $pml4, %edi
		op(0x31, 0xc0),             // xor %eax, %eax
		op(0xb9), le32(3*0x1000/4), // mov $(3 pages / 4), %ecx
		op(0xfc),                                           // cld
		op(0xf3, 0xab),                                     // rep stosl %eax -> (%edi): zero the tables
		op(0xc7, 0x05), le32(probePML4), le32(probePDPT|3), // movl $(pdpt|P|RW), pml4[0]
		op(0xc7, 0x05), le32(probePDPT), le32(probePD|3), // movl $(pd|P|RW), pdpt[0]
		op(0xc7, 0x05), le32(probePD), le32(0x83), // movl $(0|P|RW|PS), pd[0]: 0-2 MiB
		op(0x0f, 0x20, 0xe0),      // mov %cr4, %eax
		op(0x83, 0xc8, 0x20),      // or $0x20, %eax (CR4.PAE)
		op(0x0f, 0x22, 0xe0),      // mov %eax, %cr4
		op(0xb8), le32(probePML4), // mov $pml4, %eax
		op(0x0f, 0x22, 0xd8),    // mov %eax, %cr3
		op(0xb9), le32(msrEFER), // mov $0xc0000080, %ecx (EFER)
		op(0x0f, 0x32),        // rdmsr
		op(0x0d), le32(0x100), // or $0x100, %eax (EFER.LME)
		op(0x0f, 0x30),                   // wrmsr
		op(0x0f, 0x01, 0x15), le32(gdtr), // lgdt gdtr
		op(0x0f, 0x20, 0xc0),       // mov %cr0, %eax
		op(0x0d), le32(0x80000001), // or $0x80000001, %eax (CR0.PG|PE)
		op(0x0f, 0x22, 0xc0), // mov %eax, %cr0: now in compatibility mode
	)
	const ljmpLen = 7
	entry64 := entry32 + uint32(len(code32)) + ljmpLen
	code32 = slices.Concat(code32,
		op(0xea), le32(entry64), le16(0x08), // ljmp $0x08, $entry64
	)

	// 64-bit mode.
	report := slices.Concat(
		op(0x48, 0xb8), le64(probeExitValue<<32), // movabs $(value<<32), %rax
		op(0x48, 0xc1, 0xe8, 0x20), // shr $32, %rax
		op(0xe6, probeDebugPort),   // out %al, $0xf4: qemu exits
	)
	code64 := slices.Concat(
		op(0xbe), le32(msg64), // mov $msg64, %esi (zero-extends into %rsi)
		op(0xb9), le32(uint32(len(ProbeMarker64))), // mov $len, %ecx
		op(0x66, 0xba), le16(probeCOM1), // mov $0x3f8, %dx
		op(0xf3, 0x6e),             // rep outsb (%rsi) -> (%dx)
		op(0xb9), le32(probeSpins), // mov $spins, %ecx
		// spin:
		op(0xff, 0xc9),          // dec %ecx
		op(0x75, 0xfc),          // jnz spin
		op(0xb9), le32(msrEFER), // mov $0xc0000080, %ecx (EFER)
		op(0x0f, 0x32),              // rdmsr
		op(0x0f, 0xba, 0xe0, 0x0a),  // bt $10, %eax (EFER.LMA)
		op(0x73, byte(len(report))), // jnc hang: not in long mode after all
		report,
		// hang:
		op(0xfa),       // cli
		op(0xf4),       // hlt
		op(0xeb, 0xfc), // jmp hang
	)
	img = slices.Concat(img, code32, code64)
	if addr() != entry64+uint32(len(code64)) || len(img) > probeFileSize {
		panic("qemu: probe kernel layout")
	}
	img = append(img, make([]byte, probeFileSize-len(img))...)
	binary.LittleEndian.PutUint64(img[entryAt:], uint64(entry32))

	var hdr bytes.Buffer
	le := binary.LittleEndian
	binary.Write(&hdr, le, elf.Header64{
		Ident: [elf.EI_NIDENT]byte{
			0x7f, 'E', 'L', 'F',
			byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT),
		},
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64),
		Version: uint32(elf.EV_CURRENT), Entry: uint64(entry32),
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 2,
	})
	binary.Write(&hdr, le, elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_W | elf.PF_X),
		Off: 0, Vaddr: probeBase, Paddr: probeBase,
		Filesz: probeFileSize, Memsz: probeMemSz, Align: 0x1000,
	})
	binary.Write(&hdr, le, elf.Prog64{
		Type: uint32(elf.PT_NOTE), Flags: uint32(elf.PF_R),
		Off: uint64(noteOff), Vaddr: probeBase + uint64(noteOff), Paddr: probeBase + uint64(noteOff),
		Filesz: uint64(noteLen), Memsz: uint64(noteLen), Align: 4,
	})
	copy(img, hdr.Bytes())
	return img
}

func op(b ...byte) []byte { return b }

func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
