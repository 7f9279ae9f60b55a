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
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$1 port=$2 name=$3
shift 4
mkdir -p "$out"
python3 "$here/site.py" "$port" & site=$!
tcpdump -i lo -s 0 -U -w "$out/$name.pcap" "tcp port $port" 2>/dev/null & dump=$!
trap 'kill $site $dump 2>/dev/null || true' EXIT
sleep 1
url="http://127.0.0.1:$port/"
# The command's arguments with {URL} replaced (the list is read once, then appended to).
n=$#
for a in "$@"; do
    set -- "$@" "$(printf '%s' "$a" | sed "s|{URL}|$url|g")"
done
shift "$n"
"$@" > "$out/$name.log" 2>&1 || true
sleep 1
kill $dump; wait $dump 2>/dev/null || true
python3 "$here/score.py" --port "$port" --bulkhead "${BULKHEAD:-bulkhead}" "$out/$name.pcap"
