#!/usr/bin/env python3
"""Score attack wordlists held out from development: every non-empty line of every file
under DIR/<class>/ (class: sqli, cmdi, traversal, xss) is one parameter value as a
client sends it, judged by `bulkhead dpi inspect --sensor all --context param`; a line
counts when the file's class is among what the sensor found. With --libinjection
PYTHON (a Python that imports libinjection, as crates/sensor/bench/libinjection.sh
installs it), the sqli files get libinjection's score on the same bytes next to ours.

usage: wordlists.py DIR [--bulkhead PATH] [--libinjection PYTHON] [--misses CLASS|FILE]

Lines under DIR/benign/ are benign values (libinjection's `false_positives.txt`, say):
there "found" is the share flagged as SQL injection (false positives, next to
libinjection's on the same lines), "any class" the share any detector flagged, and
--misses lists the flagged lines.

Lists of bare event-handler names (`onClick`) are names, not payloads: skip them with
--skip SUBSTRING (repeatable).
"""
import argparse
import glob
import json
import os
import subprocess

CLASSES = {"sqli": "sqli", "cmdi": "cmdi", "traversal": "path_traversal", "xss": "xss",
           "benign": "sqli"}
SQL_SCORED = ("sqli", "benign")

LIBINJECTION = r"""
import sys, libinjection
class Raw(str):
    def __new__(cls, b):
        s = super().__new__(cls, b.decode("latin-1")); s.raw = b; return s
    def encode(self, *_a, **_k): return self.raw
for line in sys.stdin.buffer:
    print(int(libinjection.is_sql_injection(Raw(line.rstrip(b"\n")))["is_sqli"]))
"""


def lines_of(path):
    with open(path, "rb") as f:
        rows = [l.rstrip(b"\r") for l in f.read().split(b"\n")]
    return [l for l in rows if l.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--bulkhead", default="target/release/bulkhead")
    ap.add_argument("--libinjection")
    ap.add_argument("--misses")
    ap.add_argument("--skip", action="append", default=[])
    a = ap.parse_args()
    totals = {}
    print(f"| class | file | lines | found | any class |" + (" libinjection |" if a.libinjection else ""))
    print("|---|---|---:|---:|---:|" + ("---:|" if a.libinjection else ""))
    for cls in sorted(c for c in os.listdir(a.dir) if c in CLASSES):
        for path in sorted(glob.glob(f"{a.dir}/{cls}/*")):
            name = os.path.basename(path)
            if any(s in name for s in a.skip):
                continue
            lines = lines_of(path)
            if not lines:
                continue
            data = b"\n".join(lines) + b"\n"
            out = subprocess.run(
                [a.bulkhead, "dpi", "inspect", "--sensor", "all", "--context", "param"],
                input=data, capture_output=True, check=True,
            ).stdout.decode().split("\n")[:-1]  # not splitlines(): U+2028 is no line end here
            found = hits = 0
            misses = []
            for line, verdict in zip(lines, out):
                v = json.loads(verdict)
                got = set()
                if v["match"]:
                    got = {v["detail"]["class"]} | {x["class"] for x in v["detail"].get("also", [])}
                found += CLASSES[cls] in got
                hits += bool(got)
                # what --misses lists: an attack not found, a benign line flagged
                wrong = bool(got) if cls == "benign" else CLASSES[cls] not in got
                if wrong:
                    misses.append((line, sorted(got)))
            theirs = ""
            t = totals.setdefault(cls, [0, 0, 0, 0])
            if a.libinjection and cls in SQL_SCORED:
                li = subprocess.run([a.libinjection, "-c", LIBINJECTION], input=data,
                                    capture_output=True, check=True).stdout.split()
                n_li = sum(x == b"1" for x in li)
                t[3] += n_li
                theirs = f" {100 * n_li / len(lines):.1f} % |"
            elif a.libinjection:
                theirs = " |"
            n = len(lines)
            t[0] += n
            t[1] += found
            t[2] += hits
            print(f"| {cls} | {name} | {n} | {100 * found / n:.1f} % | {100 * hits / n:.1f} % |{theirs}")
            if a.misses in (cls, name):
                for line, got in misses:
                    print("    miss", line.decode("utf-8", "replace")[:160], got)
    for cls, (n, found, hits, li) in totals.items():
        extra = f" {100 * li / n:.1f} % |" if a.libinjection and cls in SQL_SCORED else (" |" if a.libinjection else "")
        print(f"| **{cls}** | all | {n} | **{100 * found / n:.1f} %** | {100 * hits / n:.1f} % |{extra}")


if __name__ == "__main__":
    main()
