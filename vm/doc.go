// Package vm is one VM on the host: its files (sockets and pid under the
// project's run directory; disk overlay, seed, console and qemu logs and
// its record under the state directory), its lock, and starting,
// stopping and waiting for its qemu; its disk overlay and cloud-init
// seed, the accelerator it runs under, and its console log's rotation.
// The executor and the supervisor both act on VMs through it, each
// holding the VM's lock.
package vm
