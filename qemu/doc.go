// Package qemu runs virtual machines with qemu: the command line, built by
// a pure function from a Config (so it can be golden-tested and read); a
// QMP client on encoding/json; and the boot-speed helper that extracts a
// compressed kernel's raw vmlinux when it carries a PVH entry note.
package qemu
