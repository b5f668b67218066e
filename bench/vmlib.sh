# bench/vmlib.sh is sourced by bench/vm.sh and bench/vmexec.sh, from the
# repository's top directory, with KCMD (the guests' kernel command line)
# set. It builds foldup and the test images; makes a fresh network
# namespace $NS and a directory $D, both removed on exit together with what
# ran in them (foldup's projects vmb and vmb4; a qemu and a dnsmasq by
# their pid files in $D); and writes $D/one.yaml, the one-VM project both
# scripts time. It defines
#   foldup ARGS...         foldup inside the namespace, its state in $D
#   bare_qemu KERNEL [PREFIX...]
#                          bare qemu, daemonized, booting KERNEL with the
#                          test initramfs on tap0 (the caller makes it),
#                          console in $D/q.log; run under PREFIX if given
#                          (taskset, perf record)
# and $PVH, the extracted kernel foldup boots, made by a first `up`.
IMG=/var/cache/foldup-test
scripts/images.sh $IMG >/dev/null
GO=$(scripts/go.sh)
# FOLDUP_BIN: the foldup to measure (another build, to compare); default
# this tree's, built here.
BIN=${FOLDUP_BIN:-}
if [ -z "$BIN" ]; then
	"$GO" build -o bin/foldup ./cmd/foldup
	BIN=$PWD/bin/foldup
fi

NS=fu-vm-$$
D=$(mktemp -d /tmp/fu-vm-XXXXXX)
chmod 711 "$D"
foldup() { ip netns exec $NS env FOLDUP_STATE_ROOT=$D/state FOLDUP_RUN_ROOT=$D/run "$BIN" --progress quiet "$@"; }
cleanup() {
	set +e
	foldup -p vmb down -v >/dev/null 2>&1
	foldup -p vmb4 down -v >/dev/null 2>&1
	[ -f "$D/q.pid" ] && kill "$(cat "$D/q.pid")" 2>/dev/null
	[ -f "$D/dnsmasq.pid" ] && kill "$(cat "$D/dnsmasq.pid")" 2>/dev/null
	ip netns del $NS 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT INT TERM
ip netns add $NS
ip netns exec $NS ip link set lo up

cat > "$D/one.yaml" <<EOY
name: vmb
vms:
  vm1:
    kernel: $IMG/vmlinuz
    initrd: $IMG/initrd.img
    cmdline: $KCMD
    memory: 256m
    stop_grace_period: 0s
EOY
foldup -f "$D/one.yaml" up -d; foldup -f "$D/one.yaml" down
PVH=$(ls -t /var/cache/foldup/kernels/vmlinux-* | grep -v none | head -1)

bare_qemu() {
	k=$1; shift
	rm -f "$D/q.log" "$D/q.pid"
	"$@" ip netns exec $NS qemu-system-x86_64 -name vm1 -machine q35 -accel tcg,thread=multi -cpu max -smp 1 -m 256 \
		-nodefaults -no-user-config -display none -vga none -kernel "$k" -initrd "$IMG/initrd.img" \
		-append "$KCMD" -chardev file,id=c,path="$D/q.log" -serial chardev:c \
		-netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:90:00:02 \
		-pidfile "$D/q.pid" -daemonize
}
