#!/usr/bin/env python3
"""Turns the logs of record_sqlmap.sh into sqlmap.tsv (the corpora's format:
`label<TAB>payload<TAB>source`, payload percent-escaped as the app logged it).

    make_sqlmap_tsv.py OUT/safe.log OUT/item.log ... > sqlmap.tsv

- The values the app was started with (`1`, `widget`, `wid`, sqlmap's User-Agent and the
  target URL as Referer) are left out: sqlmap sends them in every request.
- `probe`: one token of letters, digits, `.` and `-` with no `--` (`5067`, `1.6aPDn`,
  `2174-2173`): sqlmap's random values for its dynamic, casting and arithmetic checks.
  No detector should flag them.
- `sqli`: everything else sqlmap sent.
- Each distinct value once, in the order first seen; `source` is
  `sqlmap:RUN:LOCATION` of its first occurrence.
"""

import os
import re
import sys

ORIGINALS = {"1", "widget", "wid"}
PROBE = re.compile(r"^[A-Za-z0-9.-]+$")


def original(location: str, value: str) -> bool:
    if location == "header:user-agent":
        return value.startswith("sqlmap/1.7.2")
    if location == "header:referer":
        return re.fullmatch(r"http://127\.0\.0\.1:\d+/\w+", value) is not None
    return value in ORIGINALS


def main() -> None:
    seen = set()
    print("label\tpayload\tsource")
    for path in sys.argv[1:]:
        run = os.path.basename(path).removesuffix(".log")
        with open(path, encoding="ascii") as f:
            for line in f:
                location, _, value = line.rstrip("\n").partition("\t")
                if original(location, value) or value in seen:
                    continue
                seen.add(value)
                label = "probe" if PROBE.match(value) and "--" not in value else "sqli"
                print("%s\t%s\tsqlmap:%s:%s" % (label, value, run, location))


if __name__ == "__main__":
    main()
