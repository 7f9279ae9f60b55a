#!/bin/bash
# Feasibility of "the client's node vouches in the SYN" (README.md): two network
# namespaces on a veth, the sockops program on a fresh cgroup (the client node's pods),
# the tc check on the server side's ingress, nftables counting marked SYNs there.
# Usage (root): experiments/synmark/run.sh
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
dpkg -s clang libbpf-dev tcpdump curl >/dev/null 2>&1 ||
	apt-get install -y -q clang libbpf-dev tcpdump curl >/dev/null
inc=/usr/include/$(gcc -dumpmachine)
work=$(mktemp -d)
clang -O2 -g -Wall -target bpf -I"$inc" -c synmark.bpf.c -o "$work/synmark.bpf.o"
gcc -O2 -Wall -I"$inc" load.c -o "$work/load" -lbpf
cg=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)/bulkhead-synmark
port=7070
pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	sleep 0.3
	ip netns del sm-a 2>/dev/null || true
	ip netns del sm-b 2>/dev/null || true
	rmdir "$cg" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
cleanup_first() { ip netns del sm-a 2>/dev/null || true; ip netns del sm-b 2>/dev/null || true; }
cleanup_first
mkdir -p "$cg"
ip netns add sm-a
ip netns add sm-b
ip -n sm-a link add a0 type veth peer name b0 netns sm-b
ip -n sm-a addr add 10.99.0.1/24 dev a0
ip -n sm-b addr add 10.99.0.2/24 dev b0
ip -n sm-a link set a0 up
ip -n sm-b link set b0 up
ip -n sm-a link set lo up
ip -n sm-b link set lo up
ip netns exec sm-b nft -f - <<NFT
table inet synmark {
	chain pre {
		type filter hook prerouting priority -150;
		tcp dport $port tcp flags syn meta mark 0x5eed counter comment "vouched"
		tcp dport $port tcp flags syn counter comment "all"
	}
}
NFT
ip netns exec sm-b python3 -m http.server $port --bind 10.99.0.2 --directory "$work" >/dev/null 2>&1 &
pids+=($!)
"$work/load" "$work/synmark.bpf.o" "$cg" /run/netns/sm-b b0 $port >"$work/counts" &
pids+=($!)
loader=$!
until grep -q ready "$work/counts" 2>/dev/null; do
	kill -0 $loader 2>/dev/null || { echo "the loader failed" >&2; exit 1; }
	sleep 0.1
done
sleep 0.5
ip netns exec sm-a timeout 10 tcpdump -q -i a0 -w "$work/syn.pcap" -c 1 "tcp[tcpflags] & tcp-syn != 0 and dst port $port" 2>/dev/null &
tcpd=$!
sleep 0.5
echo "== 3 requests from a process in the cgroup (the path vouches)"
for _ in 1 2 3; do
	sh -c "echo \$\$ > $cg/cgroup.procs; exec ip netns exec sm-a curl -s -o /dev/null -w '%{http_code} ' --max-time 3 http://10.99.0.2:$port/"
done
echo
wait $tcpd || true
echo "== the option on the wire (tshark)"
tshark -r "$work/syn.pcap" -T fields -e tcp.options 2>/dev/null | head -1
echo "== 2 requests from outside the cgroup"
for _ in 1 2; do
	ip netns exec sm-a curl -s -o /dev/null -w '%{http_code} ' --max-time 3 "http://10.99.0.2:$port/"
done
echo
echo "== forged: our option with a random tag; the captured SYN replayed from port 40001"
ip netns exec sm-a python3 forge.py random 10.99.0.1 10.99.0.2 $port
ip netns exec sm-a python3 forge.py replay "$work/syn.pcap" 40001
echo "== the captured SYN replayed unchanged (a valid tag, but seen already)"
ip netns exec sm-a python3 forge.py replay "$work/syn.pcap"
sleep 1.5
echo "== tc check counters (last line of the loader)"
tail -1 "$work/counts"
echo "== nftables at prerouting on the server side"
ip netns exec sm-b nft list table inet synmark | grep counter
