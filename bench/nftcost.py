#!/usr/bin/env python3
"""bench/nftcost.py VARIANT.nft [SECONDS] [BRNF]

What one nftables ruleset costs TCP throughput across a bridge: one
iperf3 stream between two namespaces whose veths are ports of a bridge in
a third; the variant's tables (all named "exp") are switched between
active and `flags dormant` every 0.45 s, and the bridge port's byte
counter, read over 0.4 s of each phase, gives the rate. Each active
phase is set against the mean of the dormant phases either side of it,
so the machine's drift over the run cancels; the median and mean of
those ratios are printed, with the standard error of the mean.

This is the second method of issue 4's by-hand checks (BenchmarkThroughput
in network/ is the first). It compares variants of the rules, not foldup's
code: the files in bench/nftcost/ are written by hand after foldup's
ruleset (v5-full.nft is network/testdata/ruleset.golden with 500 members'
elements). Placeholders the script fills:
  @ELEMS_PORT@ @ELEMS_IP@ @ELEMS_PORT_IP@ @ELEMS_PORT_MAC@ @ELEMS_PORT_MAC_IP@
  @ELEMS_IIF_MAC_IP@ @VMAP_IIF@         (iif-keyed; made-up indexes for the 498)
  @PERPORT{...}@  a copy of the text per member, %I %N %M %A its index,
                  port, MAC, address
Members 0 and 1 are the two namespaces (ports va, vb); 2..499 exist only
as elements. BRNF (default 0) is the namespace's bridge-nf-call-iptables.

Everything runs in namespaces nc-h, nc-a, nc-b, deleted at the end. Needs
root, iperf3, nft. Phases vary by ~15 % here, so 30 s gives about +-2 %:
run long, and more than once, before believing a difference of 1 %.
"""
import ctypes
import os
import re
import statistics
import subprocess
import sys
import time

H, A, B = "nc-h", "nc-a", "nc-b"
CLONE_NEWNET = 0x40000000


def sh(*args, ns=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def cleanup():
    for n in (H, A, B):
        subprocess.run(["ip", "netns", "del", n], capture_output=True)


def setup(brnf):
    for n in (H, A, B):
        sh("ip", "netns", "add", n)
        sh("ip", "link", "set", "lo", "up", ns=n)
    sh("ip", "link", "add", "br0", "type", "bridge", ns=H)
    sh("ip", "link", "set", "br0", "up", ns=H)
    sh("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=" + brnf, ns=H)
    for i, (n, port) in enumerate(((A, "va"), (B, "vb"))):
        sh("ip", "link", "add", port, "type", "veth", "peer", "eth0", "netns", n, ns=H)
        sh("ip", "link", "set", port, "master", "br0", "up", ns=H)
        sh("ip", "link", "set", "eth0", "address", f"02:00:00:00:00:{i:02x}", ns=n)
        sh("ip", "addr", "add", f"10.77.1.{i}/16", "dev", "eth0", ns=n)
        sh("ip", "link", "set", "eth0", "up", ns=n)


def ruleset(text):
    idx = {p: sh("cat", f"/sys/class/net/{p}/ifindex", ns=H).strip() for p in ("va", "vb")}
    members = []
    for i in range(500):
        port = {0: "va", 1: "vb"}.get(i, f"fuvb{i}")
        members.append((i, port, f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}", f"10.77.{1 + (i >> 8)}.{i & 255}",
                        idx.get(port, str(100000 + i))))

    def perport(m):
        return "\n".join(m.group(1).replace("%I", str(i)).replace("%N", n).replace("%M", mac).replace("%A", a)
                         for i, n, mac, a, _ in members)

    text = re.sub(r"@PERPORT\{(.*?)\}@", perport, text, flags=re.S)
    subs = {
        "@ELEMS_PORT@": ", ".join(f'"{n}"' for _, n, _, _, _ in members),
        "@ELEMS_IP@": ", ".join(a for _, _, _, a, _ in members),
        "@ELEMS_PORT_IP@": ", ".join(f'"{n}" . {a}' for _, n, _, a, _ in members),
        "@ELEMS_PORT_MAC@": ", ".join(f'"{n}" . {m}' for _, n, m, _, _ in members),
        "@ELEMS_PORT_MAC_IP@": ", ".join(f'"{n}" . {m} . {a}' for _, n, m, a, _ in members),
        "@ELEMS_IIF_MAC_IP@": ", ".join(f"{x} . {m} . {a}" for _, _, m, a, x in members),
        "@VMAP_IIF@": ", ".join(f"{x} : jump p{i}" for i, _, _, _, x in members),
    }
    for k, v in subs.items():
        text = text.replace(k, v)
    return text


def load(variant):
    """Loads the variant's tables into the bridge's namespace; returns a
    function that makes them active (True) or dormant (False)."""
    text = ruleset(open(variant).read())
    r = subprocess.run(["ip", "netns", "exec", H, "nft", "-f", "-"], input=text, capture_output=True, text=True)
    if r.returncode:
        sys.exit("nft: " + r.stderr[:2000])
    families = sorted(set(re.findall(r"^table (\w+) exp", text, flags=re.M)))

    def activate(on):
        for f in families:
            sh("nft", "add", "table", f, "exp", *([] if on else ["{ flags dormant; }"]), ns=H)
    return activate


def main(variant, secs, brnf):
    activate = load(variant)

    srv = subprocess.Popen(["ip", "netns", "exec", B, "iperf3", "-s", "-1"], stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    cli = subprocess.Popen(["ip", "netns", "exec", A, "iperf3", "-c", "10.77.1.1", "-t", str(secs + 3)],
                           stdout=subprocess.DEVNULL)
    time.sleep(1.5)
    # /proc/self/net/dev shows the namespace of the thread reading it.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(os.open(f"/run/netns/{H}", os.O_RDONLY), CLONE_NEWNET) != 0:
        sys.exit("setns: " + os.strerror(ctypes.get_errno()))

    def tx_bytes():
        with open("/proc/self/net/dev") as f:
            for line in f:
                if line.strip().startswith("vb:"):
                    return int(line.split(":")[1].split()[8])

    phases = []  # (active, bytes/s)
    on, end = True, time.time() + secs
    while time.time() < end:
        activate(on)
        time.sleep(0.05)
        c0, t0 = tx_bytes(), time.monotonic()
        time.sleep(0.4)
        c1, t1 = tx_bytes(), time.monotonic()
        phases.append((on, (c1 - c0) / (t1 - t0)))
        on = not on
    cli.wait()
    srv.wait()
    ratios = [r / ((phases[i - 1][1] + phases[i + 1][1]) / 2)
              for i, (a, r) in enumerate(phases) if a and 0 < i < len(phases) - 1]
    act = [r for a, r in phases if a]
    dor = [r for a, r in phases if not a]
    print(f"{os.path.basename(variant)} bridge-nf-call-iptables={brnf}: median {statistics.median(ratios):.4f} "
          f"mean {statistics.mean(ratios):.4f} sem {statistics.stdev(ratios) / len(ratios) ** 0.5:.4f} n={len(ratios)}; "
          f"active {statistics.median(act) * 8 / 1e9:.2f}, dormant {statistics.median(dor) * 8 / 1e9:.2f} Gbit/s")


if __name__ == "__main__":
    BRNF = sys.argv[3] if len(sys.argv) > 3 else "0"
    cleanup()
    try:
        setup(BRNF)
        main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40, BRNF)
    finally:
        cleanup()
