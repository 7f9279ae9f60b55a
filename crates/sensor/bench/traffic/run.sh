#!/bin/sh
# Held-out attack traffic (docs/BENCHMARKS.md, "Held-out attack traffic"): start the test
# site on 127.0.0.1:PORT, run one attack tool per capture while tcpdump records loopback,
# then score every request with score.py. Loopback only; needs tcpdump, tshark and the
# tool (nmap, wapiti: apt-get install nmap wapiti; lfimap, arjun: pip in a venv).
#
#   run.sh OUTDIR PORT NAME -- COMMAND...     (COMMAND's {URL} becomes http://127.0.0.1:PORT/)
#
# e.g. run.sh /tmp/t 8080 passwd -- nmap -n -Pn -p 8080 127.0.0.1 --script http-passwd
#      run.sh /tmp/t 8080 wapiti -- wapiti -u {URL} -m exec,file,sql,xss,xxe --flush-session
#
# SITE_DB=mysql:PORT or postgresql:PORT: the site's queries go to that server on
# 127.0.0.1 (site.py), and its SQL is captured too, in NAME-db.pcap.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$1 port=$2 name=$3
shift 4
mkdir -p "$out"
db=${SITE_DB:-}
dbdump=
if [ -n "$db" ]; then
    tcpdump -i lo -s 0 -U -w "$out/$name-db.pcap" "tcp port ${db#*:}" 2>/dev/null & dbdump=$!
fi
python3 "$here/site.py" "$port" $db & site=$!
tcpdump -i lo -s 0 -U -w "$out/$name.pcap" "tcp port $port" 2>/dev/null & dump=$!
trap 'kill $site $dump $dbdump 2>/dev/null || true' EXIT
url="http://127.0.0.1:$port/"
# Up once it answers (a site with a database takes a moment to create its tables).
for _ in 1 2 3 4 5 6 7 8 9 10; do
    python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url" \
        2>/dev/null && break
    sleep 1
done
# The command's arguments with {URL} replaced (the list is read once, then appended to).
n=$#
for a in "$@"; do
    set -- "$@" "$(printf '%s' "$a" | sed "s|{URL}|$url|g")"
done
shift "$n"
"$@" > "$out/$name.log" 2>&1 || true
sleep 1
kill $dump $dbdump; wait $dump $dbdump 2>/dev/null || true
python3 "$here/score.py" --port "$port" --bulkhead "${BULKHEAD:-bulkhead}" "$out/$name.pcap"
