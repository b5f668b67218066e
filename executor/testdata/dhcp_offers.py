#!/usr/bin/env python3
"""Ask for DHCP offers and list every one that arrives.

    dhcp_offers.py IFACE MAC SECONDS

Broadcasts a DHCPDISCOVER from IFACE for client MAC (broadcast flag set,
so that any server answers to the whole segment), twice, and prints each
DHCP server reply to that discover that reaches IFACE within SECONDS, as
read off the wire (a packet socket: whatever its IP destination):

    reply type=2 server=10.1.2.1 yiaddr=10.1.2.7 ip_src=10.1.2.1 ether_src=aa:bb:...
"""
import os, socket, struct, sys, time

def main(argv):
    iface, mac, secs = argv[1], bytes.fromhex(argv[2].replace(":", "")), float(argv[3])
    xid = struct.unpack("!I", os.urandom(4))[0]
    bootp = struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000) + b"\0" * 16 + mac.ljust(16, b"\0") + b"\0" * 192
    discover = bootp + b"\x63\x82\x53\x63" + bytes([53, 1, 1, 55, 3, 1, 3, 6, 255])

    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    rx.bind((iface, 0))
    rx.settimeout(0.2)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    tx.bind(("0.0.0.0", 68))

    start, sent = time.time(), 0
    while time.time() < start + secs:
        if sent < 2 and time.time() >= start + sent * 1.5:
            tx.sendto(discover, ("255.255.255.255", 67))
            sent += 1
        try:
            f = rx.recv(2048)
        except socket.timeout:
            continue
        if len(f) < 14 + 20 + 8 + 240 or f[12:14] != b"\x08\x00" or f[23] != 17:
            continue
        ip = 14 + (f[14] & 15) * 4
        sport, dport = struct.unpack("!HH", f[ip:ip + 4])
        b = f[ip + 8:]
        if sport != 67 or dport != 68 or b[0] != 2 or struct.unpack("!I", b[4:8])[0] != xid or b[236:240] != b"\x63\x82\x53\x63":
            continue
        opts, i = {}, 240
        while i < len(b) and b[i] != 255:
            if b[i] == 0:
                i += 1
                continue
            opts[b[i]] = b[i + 2:i + 2 + b[i + 1]]
            i += 2 + b[i + 1]
        server = socket.inet_ntoa(opts[54]) if len(opts.get(54, b"")) == 4 else "-"
        print("reply type=%d server=%s yiaddr=%s ip_src=%s ether_src=%s" % (
            opts.get(53, b"\0")[0], server, socket.inet_ntoa(b[16:20]),
            socket.inet_ntoa(f[26:30]), ":".join("%02x" % x for x in f[6:12])), flush=True)
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv))
