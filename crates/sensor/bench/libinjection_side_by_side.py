#!/usr/bin/env python3
"""SQL injection: bulkhead's sensor and libinjection 3.10.0 on the same values, in one run.

Reads what bulkhead found (the `verdicts` example's lines for the corpus files, and the
held-out test's dump, `BULKHEAD_HELDOUT_DUMP`), scores exactly the same values with
libinjection (`libinjection-python` 1.1.6, a Cython wrapper of libinjection v3.10.0, the
version the corpora README scores), and prints one Markdown table: per file and label,
how many rows each flags as SQL injection, and the rows only one of them flags.

    libinjection_side_by_side.py CORPORA_DIR VERDICTS HELDOUT_DUMP [--show]

Corpus rows are split as `tests/corpora.rs` splits them (CRS query and body rows into
argument names and values, ModSecurity-style): a row is flagged when any part is.
`--show` lists the rows only one side flags.
"""
import sys
import urllib.parse
from collections import defaultdict

import libinjection

CORPUS = ["attacks/libinjection.tsv", "attacks/httpparams.tsv", "attacks/crs_942_sqli.tsv"]
# Held-out groups worth a SQL verdict: SQL attacks, and what nothing should flag.
HELDOUT_SQL = ("sqlmap", "wfuzz Injections/SQL.txt", "wfuzz vulns/sql_inj.txt",
               "wapiti blindSQLPayloads.txt")
HELDOUT_QUIET = ("benign", "wfuzz general/common.txt", "wfuzz others/names.txt",
                 "wfuzz Injections/bad_chars.txt")


def parts(value: bytes, source: str):
    loc = source.rsplit(":", 1)[-1]
    if loc in ("QUERY", "BODY"):
        out = []
        for kv in value.split(b"&"):
            k, eq, v = kv.partition(b"=")
            out.append(k)
            if eq:
                out.append(v)
        return out
    return [value]


class Raw(str):
    """The wrapper takes a str and UTF-8-encodes it: hand it the bytes as they are
    (payloads are not all UTF-8), as the C library reads them."""

    def __new__(cls, b: bytes):
        s = super().__new__(cls, b.decode("latin-1"))
        s.raw = b
        return s

    def encode(self, *_args, **_kw):
        return self.raw


def sqli(value: bytes) -> bool:
    return bool(libinjection.is_sql_injection(Raw(value))["is_sqli"])


def main():
    corpora, verdicts, dump = sys.argv[1:4]
    show = "--show" in sys.argv
    ours = {}
    for line in open(verdicts, encoding="utf-8", errors="replace"):
        f = line.rstrip("\n").split("\t")
        if len(f) >= 3 and f[0] in CORPUS:
            ours[(f[0], int(f[1]))] = "sqli" in (f[3].split(",") if len(f) > 3 else [])
    # (group, label) -> [rows, ours, theirs, only ours, only theirs]
    table = defaultdict(lambda: [0, 0, 0, 0, 0])
    shown = []

    def count(group, label, us, them, text):
        t = table[(group, label)]
        t[0] += 1
        t[1] += us
        t[2] += them
        t[3] += us and not them
        t[4] += them and not us
        if show and us != them:
            shown.append(f"{'only bulkhead' if us else 'only libinjection'}\t{group}\t{label}\t{text[:160]!r}")

    for file in CORPUS:
        rows = open(f"{corpora}/{file}", encoding="utf-8").read().split("\n")[1:]
        for n, row in enumerate(r for r in rows if r):
            label, payload, source = (row.split("\t") + ["", ""])[:3]
            value = urllib.parse.unquote_to_bytes(payload)
            them = any(sqli(p) for p in parts(value, source))
            count(file, label, ours[(file, n)], them, value)
    for line in open(dump, encoding="utf-8"):
        group, label, payload, found = (line.rstrip("\n").split("\t") + [""])[:4]
        if not (group.startswith(HELDOUT_SQL) or group.startswith(HELDOUT_QUIET)):
            continue
        value = urllib.parse.unquote_to_bytes(payload)
        count("held-out: " + group, label, "sqli" in found.split(","), sqli(value), value)

    print("| file or held-out group | label | rows | bulkhead sqli | libinjection | only bulkhead | only libinjection |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (group, label), (n, us, them, only_us, only_them) in sorted(table.items()):
        pct = lambda k: f"{100 * k / n:.2f} % ({k})"
        print(f"| {group} | {label} | {n} | {pct(us)} | {pct(them)} | {only_us} | {only_them} |")
    for s in shown:
        print(s)


if __name__ == "__main__":
    main()
