#!/usr/bin/env python3
"""nuclei.tsv from the requests extracted from nuclei's templates (see README.md).

    make_nuclei_tsv.py sqli.jsonl xss.jsonl traversal.jsonl rce.jsonl cves.jsonl > nuclei.tsv

Each input line is {"template": PATH, "class": CLASS, ["kind": KIND,] "request": RAW},
RAW the whole HTTP/1.1 request as the template sends it, placeholders filled. Requests
that run code through a file upload or another product's feature (`kind` upload or
other) are no class of ours and are left out; the rest keep their class as label.
"""
import json
import sys

KEEP_KINDS = {None, "os_command", "code", "jndi", "deserialization", "expression"}


def escaped(raw: bytes) -> str:
    return "".join(
        f"%{b:02X}" if b == 0x25 or not 0x20 <= b < 0x7F else chr(b) for b in raw
    )


def main():
    print("label\tpayload\tsource")
    seen = set()
    for path in sys.argv[1:]:
        for line in open(path, encoding="utf-8"):
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("kind") not in KEEP_KINDS:
                continue
            raw = r["request"]
            if "\r\n\r\n" not in raw:
                raw = raw.rstrip("\r\n") + "\r\n\r\n"
            key = (r["class"], raw)
            if key in seen:
                continue
            seen.add(key)
            source = "nuclei:" + r["template"] + (":" + r["kind"] if r.get("kind") else "")
            # A binary body is written one byte per character (latin-1); text as UTF-8.
            try:
                data = raw.encode("latin-1")
            except UnicodeEncodeError:
                data = raw.encode("utf-8")
            print(f"{r['class']}\t{escaped(data)}\t{source}")


main()
