#!/usr/bin/env python3
"""Score the sensors on captured attack traffic, request by request.

Every HTTP/1 request of each capture (the client's TCP payloads to PORT, reassembled from
tshark's output and cut at head + Content-Length) counts as found when
`bulkhead dpi inspect --sensor all --capture` reports a finding in it (same connection,
method and target), or a `refused` row on its connection (the proxy would not have let it
through). Prints one line per capture and a total; with SHOW=1 every request not found.

    score.py [--port 8080] [--bulkhead PATH] CAPTURE...
"""
import argparse
import collections
import json
import os
import subprocess


def requests(pcap, port):
    out = subprocess.run(
        ["tshark", "-r", pcap, "-Y", f"tcp.dstport=={port} && tcp.len>0", "-T", "fields",
         "-e", "tcp.srcport", "-e", "tcp.seq_raw", "-e", "tcp.payload"],
        capture_output=True, text=True, check=True).stdout
    streams = collections.defaultdict(dict)
    for line in out.splitlines():
        p = line.split("\t")
        if len(p) == 3 and p[2]:
            streams[p[0]][int(p[1])] = bytes.fromhex(p[2].replace(":", ""))
    for src, segs in streams.items():
        data = b"".join(segs[k] for k in sorted(segs))
        while data:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                break
            head = data[:end].decode("latin-1")
            n = 0
            for h in head.split("\r\n")[1:]:
                if h.lower().startswith("content-length:"):
                    try:
                        n = int(h.split(":", 1)[1])
                    except ValueError:
                        pass
            line = head.split("\r\n")[0].split(" ")
            target = line[1] if len(line) > 1 else ""
            yield src, line[0], target, data[end + 4:end + 4 + n]
            data = data[end + 4 + n:]


def findings(bulkhead, pcap):
    out = subprocess.run([bulkhead, "dpi", "inspect", "--sensor", "all", "--capture", pcap,
                          "-o", "json"], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        r = json.loads(line)
        src = r["src"].rsplit(":", 1)[1]
        if r["class"] == "refused":
            found.add((src, None, None))
            continue
        parts = (r.get("request") or "").split(" ")
        if len(parts) >= 3:
            found.add((src, parts[1], parts[2]))
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", default="8080")
    ap.add_argument("--bulkhead", default="bulkhead")
    ap.add_argument("captures", nargs="+")
    a = ap.parse_args()
    total = hit = 0
    for pcap in a.captures:
        found = findings(a.bulkhead, pcap)
        n = f = 0
        for src, method, target, body in requests(pcap, a.port):
            n += 1
            if (src, method, target) in found or (src, None, None) in found:
                f += 1
            elif os.environ.get("SHOW"):
                print(f"   not found: {method} {target[:200]} {body[:200]!r}")
        total, hit = total + n, hit + f
        print(f"{os.path.basename(pcap)}\t{n} requests\t{f} found")
    print(f"all\t{total} requests\t{hit} found")


main()
