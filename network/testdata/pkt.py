#!/usr/bin/env python3
"""Send and sniff test frames inside a network namespace.

    pkt.py arp IFACE SENDER_MAC SENDER_IP TARGET_IP      send a gratuitous ARP reply
    pkt.py sniff-arp IFACE SENDER_IP SECONDS             exit 0 if an ARP from SENDER_IP arrives
    pkt.py udp SPORT DPORT DST [SRC]                     send one UDP datagram (broadcast, unicast, or
                                                         IPv6 to DST, with %IFACE for a link-local one),
                                                         from SRC if given (an address of the sender's)
    pkt.py sniff-udp PORT SECONDS                        exit 0 if a datagram arrives on PORT
    pkt.py sniff-udp6 PORT SECONDS                       the same for IPv6 (multicast to all nodes too)
    pkt.py na IFACE SRC TARGET                           send an override NA from SRC: TARGET is at IFACE's MAC
    pkt.py sniff-na TARGET SECONDS                       exit 0 if an NA for TARGET arrives
    pkt.py icmp6 IFACE TYPE                              send an ICMPv6 message of TYPE to ff02::1
    pkt.py sniff-icmp6 TYPE SECONDS                      exit 0 if an ICMPv6 message of TYPE arrives
    pkt.py mcast IFACE GROUP PORT                        send one datagram to a multicast group
    pkt.py sniff-mcast IFACE GROUP PORT SECONDS          join GROUP; exit 0 if a datagram arrives
    pkt.py serve PROTO PORT SECONDS                      answer each tcp connection or udp datagram
                                                         with the peer's address, for SECONDS
    pkt.py connect PROTO HOST PORT                       print what the server answers; exit 1 if nothing

The sniff-* commands and serve print "listening" once their socket is
bound (and joined), so that a test sends only then. A sniffer's SECONDS
start when it reads a line (or end of file) on its standard input: the
test writes one once the sender has sent, however long the sender took
to start, so that a slow start under load is not taken for a dropped
packet. (It gives up after 120 s without that line.)
"""
import select, socket, struct, sys, time

def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))

def sniff(s, secs, match):
    """Exit status 0 if a packet read from s satisfies match before secs
    have passed since standard input said the sender is done."""
    print("listening", flush=True)
    s.setblocking(False)
    wait = [s, sys.stdin]
    end = time.time() + 120
    while time.time() < end:
        ready, _, _ = select.select(wait, [], [], max(0.0, end - time.time()))
        if sys.stdin in ready:
            sys.stdin.readline()
            wait = [s]
            end = time.time() + secs
        if s in ready:
            try:
                f = s.recv(2048)
            except BlockingIOError:
                continue
            if match(f):
                return 0
    return 1

def main(argv):
    cmd = argv[1]
    if cmd == "arp":
        iface, smac, sip, tip = argv[2:6]
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((iface, 0))
        eth = b"\xff" * 6 + mac(smac) + struct.pack("!H", 0x0806)
        arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + mac(smac) + socket.inet_aton(sip) + b"\xff" * 6 + socket.inet_aton(tip)
        for _ in range(3):
            s.send(eth + arp)
            time.sleep(0.05)
        return 0
    if cmd == "sniff-arp":
        iface, sip, secs = argv[2], socket.inet_aton(argv[3]), float(argv[4])
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
        s.bind((iface, 0))
        return sniff(s, secs, lambda f: len(f) >= 42 and f[28:32] == sip)
    if cmd == "udp":
        sport, dport, dst = int(argv[2]), int(argv[3]), argv[4]
        fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        src = argv[5] if len(argv) > 5 else ("0.0.0.0" if fam == socket.AF_INET else "::")
        s.bind(socket.getaddrinfo(src, sport, fam, socket.SOCK_DGRAM)[0][4])
        to = socket.getaddrinfo(dst, dport, fam, socket.SOCK_DGRAM)[0][4]
        if fam == socket.AF_INET6 and "%" in dst:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, to[3])
        for _ in range(3):
            s.sendto(b"foldup-test", to)
            time.sleep(0.05)
        return 0
    if cmd == "sniff-udp6":
        port, secs = int(argv[2]), float(argv[3])
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port))
        return sniff(s, secs, lambda f: True)
    if cmd == "na":
        iface, src, target = argv[2], argv[3], argv[4]
        with open("/sys/class/net/%s/address" % iface) as f:
            own = mac(f.read().strip())
        s6 = socket.inet_pton(socket.AF_INET6, src)
        d6 = socket.inet_pton(socket.AF_INET6, "ff02::1")
        body = bytearray(struct.pack("!BBHI", 136, 0, 0, 0x20000000) + socket.inet_pton(socket.AF_INET6, target) + bytes([2, 1]) + own)
        pseudo = s6 + d6 + struct.pack("!I", len(body)) + b"\0\0\0\x3a" + bytes(body)
        total = sum(struct.unpack("!%dH" % (len(pseudo) // 2), pseudo))
        while total > 0xffff:
            total = (total & 0xffff) + (total >> 16)
        struct.pack_into("!H", body, 2, ~total & 0xffff)
        ip6 = struct.pack("!IHBB", 0x60000000, len(body), 58, 255) + s6 + d6
        eth = mac("33:33:00:00:00:01") + own + struct.pack("!H", 0x86dd)
        p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        p.bind((iface, 0))
        for _ in range(3):
            p.send(eth + ip6 + bytes(body))
            time.sleep(0.05)
        return 0
    if cmd == "sniff-na":
        target, secs = socket.inet_pton(socket.AF_INET6, argv[2]), float(argv[3])
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        return sniff(s, secs, lambda f: len(f) >= 24 and f[0] == 136 and f[8:24] == target)
    if cmd == "sniff-udp":
        port, secs = int(argv[2]), float(argv[3])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        return sniff(s, secs, lambda f: True)
    if cmd == "icmp6":
        iface, typ = argv[2], int(argv[3])
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(iface))
        # Type, code, checksum (the kernel fills it), then a body: for a
        # router advertisement, hop limit 64, flags 0, lifetime 1800 s.
        msg = struct.pack("!BBHBBHII", typ, 0, 0, 64, 0, 1800, 0, 0)
        for _ in range(3):
            s.sendto(msg, ("ff02::1", 0, 0, socket.if_nametoindex(iface)))
            time.sleep(0.05)
        return 0
    if cmd == "sniff-icmp6":
        typ, secs = int(argv[2]), float(argv[3])
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        return sniff(s, secs, lambda f: bool(f) and f[0] == typ)
    if cmd == "mcast":
        iface, group, port = argv[2], argv[3], int(argv[4])
        fam = socket.AF_INET6 if ":" in group else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("4s4si", b"\0" * 4, b"\0" * 4, socket.if_nametoindex(iface)))
        else:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(iface))
        for _ in range(3):
            s.sendto(b"foldup-test", (group, port))
            time.sleep(0.05)
        return 0
    if cmd == "sniff-mcast":
        iface, group, port, secs = argv[2], argv[3], int(argv[4]), float(argv[5])
        idx = socket.if_nametoindex(iface)
        if ":" in group:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::", port))
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", idx))
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4si", socket.inet_aton(group), b"\0" * 4, idx))
        return sniff(s, secs, lambda f: f == b"foldup-test")
    if cmd == "serve":
        proto, port, secs = argv[2], int(argv[3]), float(argv[4])
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(socket.AF_INET6, kind)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port))
        if kind == socket.SOCK_STREAM:
            s.listen(16)
        print("listening", flush=True)
        s.settimeout(0.2)
        end = time.time() + secs
        while time.time() < end:
            try:
                if kind == socket.SOCK_STREAM:
                    c, peer = s.accept()
                    c.sendall(peer[0].removeprefix("::ffff:").encode())
                    c.close()
                else:
                    _, peer = s.recvfrom(2048)
                    s.sendto(peer[0].removeprefix("::ffff:").encode(), peer)
            except (socket.timeout, OSError):
                continue
        return 0
    if cmd == "connect":
        proto, host, port = argv[2], argv[3], int(argv[4])
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(fam, kind)
        s.settimeout(1.5)
        try:
            if kind == socket.SOCK_STREAM:
                s.connect((host, port))
            else:
                s.sendto(b"foldup-test", (host, port))
            data = s.recv(256)
        except OSError:
            return 1
        if not data:
            return 1
        print(data.decode())
        return 0
    print(__doc__, file=sys.stderr)
    return 2

if __name__ == "__main__":
    sys.exit(main(sys.argv))
