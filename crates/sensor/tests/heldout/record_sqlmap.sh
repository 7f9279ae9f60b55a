#!/usr/bin/env bash
# Runs sqlmap (Debian 12's 1.7.2) for real against vulnapp.py and records every parameter
# value it sends, one log per run: OUT/RUN.log (`location<TAB>escaped value`).
#
#   record_sqlmap.sh OUT [RUN...]      (default: every run below)
#
# Then `make_sqlmap_tsv.py OUT/*.log > sqlmap.tsv` labels and deduplicates them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: record_sqlmap.sh OUT [RUN...]}"
shift
mkdir -p "$out"
port=18931
base="http://127.0.0.1:$port"
common=(--batch --level 3 --risk 2 --flush-session --output-dir "$out/sqlmap-state")

declare -A runs=(
  # not injectable (bound parameter): every DBMS's payloads for id, User-Agent, Referer
  [safe]="-u $base/safe?id=1 --technique=BEUSTQ"
  # numeric GET parameter; then read the database through the best technique (UNION)
  [item]="-u $base/item?id=1 --technique=BEUSTQ --banner --tables --dump -T users"
  # string POST parameter
  [search]="-u $base/search --data name=widget --technique=BEUSTQ --banner --tables --dump -T users"
  # string inside LIKE '%...%'
  [find]="-u $base/find?q=wid --technique=BEUSTQ --banner"
  # extraction through one technique each: boolean blind, time-based blind
  [item_blind]="-u $base/item?id=1 --technique=B --dump -T users"
  [search_time]="-u $base/search --data name=widget --technique=T --time-sec 1 --banner"
  # sqlmap's own evasions (tamper scripts): comments for blanks, random case, BETWEEN for >;
  # random blanks, LIKE for =, && || for AND OR
  [item_tamper]="-u $base/item?id=1 --technique=BEUSTQ --tamper=between,randomcase,space2comment --banner --dump -T users"
  [search_tamper]="-u $base/search --data name=widget --technique=BEUSTQ --tamper=space2randomblank,equaltolike,symboliclogical --banner --dump -T users"
  [safe_tamper]="-u $base/safe?id=1 --technique=BEUSTQ --tamper=between,randomcase,space2comment"
)
order=(safe item search find item_blind search_time item_tamper search_tamper safe_tamper)
[ $# -gt 0 ] && order=("$@")

for run in "${order[@]}"; do
  python3 "$here/vulnapp.py" "$port" "$out/$run.log" &
  app=$!
  sleep 0.5
  kill -0 "$app" || { echo "$run: the app did not start (port $port taken?)" >&2; exit 1; }
  # shellcheck disable=SC2086
  sqlmap ${runs[$run]} "${common[@]}" >"$out/$run.sqlmap.txt" 2>&1 || true
  kill "$app"
  wait "$app" 2>/dev/null || true
  echo "$run: $(wc -l <"$out/$run.log") values logged"
done
