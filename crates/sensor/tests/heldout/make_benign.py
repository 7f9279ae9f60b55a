#!/usr/bin/env python3
"""Builds benign.tsv: held-out benign parameter values from a Debian 12 machine's own
files (no attack content), in the corpora's format (`label<TAB>payload<TAB>source`,
payload percent-escaped: `%`, control bytes and non-ASCII as %XX).

    make_benign.py > benign.tsv

Sources (`source` column = `benign:KIND:WHERE`), each sampled deterministically
(sorted, every k-th) so the file is reproducible on the same package set:
- prose:license   lines of /usr/share/common-licenses texts
- prose:changelog the first line of each `  * ` entry of /usr/share/doc/*/changelog.Debian.gz
- apropos         the one-line descriptions of `man -k .`
- path            file paths from `dpkg -L` under /usr/share (relative and absolute)
- json            ISO 3166-1 / 4217 / 639-2 records from iso-codes, one JSON object each,
                  and small lists of them
- url             upstream `Source:` URLs from /usr/share/doc/*/copyright
- query           generated form values (random.Random(20261203)): search phrases from
                  the prose's words, names with apostrophes, numbers, prices, dates,
                  times, UUIDs, sort orders, ranges, id lists, phone numbers, addresses,
                  sizes in feet and inches, quoted phrases
"""

import glob
import gzip
import json
import random
import re
import subprocess
import uuid

MAX = 400  # longest value kept, bytes


def escape(value: str) -> str:
    out = []
    for b in value.encode("utf-8"):
        if b == 0x25 or b < 0x20 or b >= 0x7F:
            out.append("%%%02X" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def sample(items, n):
    items = sorted(set(items))
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


rows = []


def add(kind, where, values):
    for v in values:
        v = v.strip()
        if v and len(v.encode("utf-8")) <= MAX:
            rows.append((v, "benign:%s:%s" % (kind, where)))


# Prose: licence texts.
for name in ["GPL-3", "Apache-2.0", "LGPL-2.1", "MPL-2.0", "GFDL-1.3", "Artistic"]:
    with open("/usr/share/common-licenses/" + name, encoding="utf-8") as f:
        lines = [ln.strip() for ln in f if len(ln.strip()) >= 20]
    add("prose:license", name, sample(lines, 500))

# Prose: Debian changelog entries.
entries = []
for path in sorted(glob.glob("/usr/share/doc/*/changelog.Debian.gz")):
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            for ln in f:
                if ln.startswith("  * ") and 20 <= len(ln.strip()) <= 200:
                    entries.append(ln[4:].strip())
    except OSError:
        pass
add("prose:changelog", "changelog.Debian", sample(entries, 2500))

# apropos descriptions.
out = subprocess.run(["man", "-k", "."], capture_output=True, text=True).stdout
descs = [ln.split(" - ", 1)[1] for ln in out.splitlines() if " - " in ln]
add("apropos", "man-k", sample(descs, 1500))

# File paths.
out = subprocess.run(
    "dpkg-query -W -f='${Package}\\n' | xargs dpkg -L 2>/dev/null",
    shell=True, capture_output=True, text=True,
).stdout
paths = [p for p in out.splitlines() if p.startswith("/usr/share/") and "." in p.rsplit("/", 1)[-1]]
picked = sample(paths, 1500)
add("path", "dpkg-L", [p if i % 2 else p[len("/usr/share/"):] for i, p in enumerate(picked)])

# JSON records.
records = []
for name, key in [("iso_3166-1", "3166-1"), ("iso_4217", "4217"), ("iso_639-2", "639-2")]:
    with open("/usr/share/iso-codes/json/%s.json" % name, encoding="utf-8") as f:
        for r in json.load(f)[key]:
            records.append(json.dumps(r, ensure_ascii=False, sort_keys=True))
records = sample(records, 900)
add("json", "iso-codes", records)
add("json", "iso-codes-list", ["[%s]" % ",".join(records[i:i + 3]) for i in range(0, 300, 3)])

# URLs.
urls = []
for path in sorted(glob.glob("/usr/share/doc/*/copyright")):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for ln in f:
                m = re.match(r"^Source:\s*<?(\S+?)>?\s*$", ln)
                if m and "://" in m.group(1):
                    urls.append(m.group(1))
    except OSError:
        pass
add("url", "copyright", sample(urls, 400))

# Generated form values.
rng = random.Random(20261203)
words = sorted({w.lower() for ln in entries + descs for w in re.findall(r"[A-Za-z]{3,12}", ln)})
surnames = ["O'Brien", "O'Connor", "O'Neill", "D'Angelo", "D'Souza", "L'Amour", "O'Hara",
            "N'Dour", "Dell'Acqua", "O'Malley", "D'Arcy", "McDonald's", "Land's End"]
first = ["Mary", "John", "Aoife", "Luca", "Priya", "Sean", "Chloé", "José", "Ngozi", "Kenji"]
streets = ["Baker Street", "rue de Rivoli", "Hauptstraße", "Calle Mayor", "Main St.", "Elm Ave"]
query = []
for i in range(3000):
    k = i % 15
    if k == 0:
        query.append(" ".join(rng.choice(words) for _ in range(rng.randint(2, 4))))
    elif k == 1:
        query.append("%s %s" % (rng.choice(first), rng.choice(surnames)))
    elif k == 2:
        query.append(str(rng.randint(0, 10 ** rng.randint(1, 9))))
    elif k == 3:
        query.append("%d.%02d" % (rng.randint(0, 999), rng.randint(0, 99)))
    elif k == 4:
        query.append("%04d-%02d-%02d" % (rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)))
    elif k == 5:
        query.append("%04d-%02d-%02dT%02d:%02d:%02dZ" % (
            rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28),
            rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)))
    elif k == 6:
        query.append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
    elif k == 7:
        query.append(rng.choice(["%s:%s", "%s %s", "%s,%s", "-%s"]).replace("%s", rng.choice(
            ["price", "name", "date", "created_at", "rating", "id"]), 1).replace(
            "%s", rng.choice(["asc", "desc", "ASC", "DESC"]), 1))
    elif k == 8:
        a = rng.randint(0, 500)
        query.append(rng.choice(["%d-%d", "%d..%d", "%d to %d", "[%d,%d]"]) % (a, a + rng.randint(1, 99)))
    elif k == 9:
        query.append(",".join(str(rng.randint(1, 9999)) for _ in range(rng.randint(2, 6))))
    elif k == 10:
        query.append("+%d (%03d) %03d-%04d" % (rng.randint(1, 99), rng.randint(100, 999),
                                                rng.randint(0, 999), rng.randint(0, 9999)))
    elif k == 11:
        query.append("%d %s, Apt %d" % (rng.randint(1, 400), rng.choice(streets), rng.randint(1, 30)))
    elif k == 12:
        query.append("%d'%d\"" % (rng.randint(4, 6), rng.randint(0, 11)))
    elif k == 13:
        phrase = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        query.append(rng.choice(['"%s"', "'%s'", "%s's", "the \"%s\" one"]) % phrase)
    else:
        query.append("%s & %s" % (rng.choice(words), rng.choice(words)))
add("query", "generated", query)

seen = set()
print("label\tpayload\tsource")
for v, src in rows:
    if v in seen:
        continue
    seen.add(v)
    print("benign\t%s\t%s" % (escape(v), src))
