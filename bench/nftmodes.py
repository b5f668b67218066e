#!/usr/bin/env python3
"""bench/nftmodes.py VARIANT.nft [ROUNDS] [SECONDS] [MODE] [BRNF]

What one nftables ruleset costs TCP throughput across a bridge, and how
much of that is the rules' CPU and how much the way the two CPUs of this
kind of machine take turns. The setup is bench/nftcost.py's (a bridge in
namespace nc-h, two members nc-a and nc-b on veths, the variant's tables
loaded with 500 members' elements); each of ROUNDS rounds (default 10)
runs iperf3 for SECONDS (default 2) with the tables dormant and active,
in alternating order, and the median of the rounds' ratios is printed,
with each side's throughput, TCP retransmissions, CPU busy time
(/proc/stat) and bytes moved per busy CPU-second.

MODE (default plain):
  plain   iperf3 client and server wherever the scheduler puts them;
  same    both pinned to CPU 0: one CPU does all the work, throughput
          follows CPU time alone;
  split   the client pinned to CPU 0, the server to CPU 1;
  poll    as plain, with a SCHED_IDLE busy loop on each CPU (ended with
          the run, and after 600 s in any case), so that no CPU halts
          while it waits: what is left without the cost of waking a CPU.
BRNF (default 0) is the bridge namespace's bridge-nf-call-iptables.

Everything runs in namespaces that are deleted at the end. Needs root,
iperf3, nft.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

VARIANT = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
SECS = int(sys.argv[3]) if len(sys.argv) > 3 else 2
MODE = sys.argv[4] if len(sys.argv) > 4 else "plain"
BRNF = sys.argv[5] if len(sys.argv) > 5 else "0"
MODES = ("plain", "same", "split", "poll")
if MODE not in MODES:
    sys.exit(f"unknown mode {MODE!r}: one of {', '.join(MODES)}")
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nftcost as nc  # noqa: E402


def cpu_busy():
    """(busy, total) jiffies per CPU; busy is user, nice, system, irq and
    softirq (not idle, iowait or steal; guest time is already in user)."""
    out = []
    with open("/proc/stat") as f:
        for line in f:
            if re.match(r"cpu\d", line):
                v = list(map(int, line.split()[1:]))
                out.append((v[0] + v[1] + v[2] + v[5] + v[6], sum(v[:8])))
    return out


def main():
    activate = nc.load(VARIANT)

    procs = []
    if MODE == "poll":
        for c in range(os.cpu_count()):
            procs.append(subprocess.Popen(["timeout", "600", "taskset", "-c", str(c), "chrt", "-i", "0",
                                           "sh", "-c", "while :; do :; done"]))
    pin = ["-A", "0"] if MODE in ("same", "split") else []
    spin = ["-A", "1"] if MODE == "split" else pin
    try:
        procs.append(subprocess.Popen(["ip", "netns", "exec", nc.B, "iperf3", "-s"] + spin, stdout=subprocess.DEVNULL))
        time.sleep(0.3)
        runs = {False: [], True: []}  # active: [(Gbit/s, retransmits, busy CPU-s per s)]
        ratios = []
        for i in range(ROUNDS):
            got = {}
            for on in ((False, True) if i % 2 == 0 else (True, False)):
                activate(on)
                c0 = cpu_busy()
                out = nc.sh("iperf3", "-c", "10.77.1.1", "-t", str(SECS), "-J", *pin, ns=nc.A)
                c1 = cpu_busy()
                end = json.loads(out)["end"]
                busy = sum((b1 - b0) / (t1 - t0) for (b0, t0), (b1, t1) in zip(c0, c1))
                got[on] = (end["sum_received"]["bits_per_second"] / 1e9, end["sum_sent"]["retransmits"], busy)
                runs[on].append(got[on])
            ratios.append(got[True][0] / got[False][0])
    finally:
        for p in procs:
            p.terminate()
            p.wait()

    def side(xs):
        med = lambda k: statistics.median(x[k] for x in xs)  # noqa: E731
        per = statistics.median(x[0] / 8 / x[2] for x in xs)
        return f"{med(0):.2f} Gbit/s, {med(1):.0f} retransmits, {med(2):.2f} CPUs busy, {per:.3f} GB per busy CPU-s"
    print(f"{os.path.basename(VARIANT)} mode={MODE} bridge-nf-call-iptables={BRNF}, {ROUNDS} rounds of {SECS} s")
    print(f"  dormant: {side(runs[False])}")
    print(f"  active:  {side(runs[True])}")
    print(f"  ratio active/dormant: median {statistics.median(ratios):.4f}, mean {statistics.mean(ratios):.4f}, "
          f"sd {statistics.stdev(ratios):.4f}")


if __name__ == "__main__":
    nc.cleanup()
    try:
        nc.setup(BRNF)
        main()
    finally:
        nc.cleanup()
