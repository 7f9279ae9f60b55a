#!/usr/bin/env python3
"""Forged SYNs from a raw socket (what a pod with CAP_NET_RAW can send), to the server
of run.sh: `forge.py random` (our option, a random tag), `forge.py replay PCAP [port]`
(the first SYN of PCAP sent again, its source port changed when given: the tag no
longer matches; unchanged: a replay within the epoch, which the tag alone cannot tell)."""
import os
import socket
import struct
import sys


def csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def send(src, dst, tcp: bytes):
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + b"\0\0" + tcp[18:]
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    s.sendto(tcp, (dst, 0))


def first_syn(path):
    data = open(path, "rb").read()
    off = 24  # pcap global header; Ethernet frames (tcpdump -i on a veth)
    while off < len(data):
        incl = struct.unpack("<I", data[off + 8 : off + 12])[0]
        frame = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        ip = frame[14:]
        ihl = (ip[0] & 15) * 4
        tcp = ip[ihl : struct.unpack("!H", ip[2:4])[0]]
        if ip[9] == 6 and tcp[13] & 0x12 == 0x02:
            return socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), tcp
    sys.exit("no SYN in " + path)


if sys.argv[1] == "random":
    src, dst, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
    opt = struct.pack("!BBH", 253, 12, 0xB1C0) + os.urandom(8)
    hdr = struct.pack("!HHIIBBHHH", 40000, port, 12345, 0, ((20 + len(opt)) // 4) << 4, 0x02, 64240, 0, 0)
    send(src, dst, hdr + opt)
else:
    src, dst, tcp = first_syn(sys.argv[2])
    if len(sys.argv) > 3:
        tcp = struct.pack("!H", int(sys.argv[3])) + tcp[2:]
    send(src, dst, tcp)
