#!/bin/bash
# Redis through the kernel, five ways, loopback only (server on port 6390):
#   direct  redis-benchmark to redis-server
#   relay   a user-space relay (epoll, one thread, relay.c)
#   kreply  the same relay, the server's replies sent out of the relay's client-side
#           socket by sk_msg on the server's socket (reply.bpf.c)
#   sk_skb  sockmap splice: the relay accepts and connects, then the kernel joins the two
#           sockets (stream parser + verdict, splice.bpf.c)
#   sk_msg  no relay: sockops puts both ends of every connection to the port in a
#           sockhash and sendmsg goes straight into the peer's receive queue, the command
#           name checked on the way (FLUSHALL is refused; msg.bpf.c)
#   sockops the product's program (crates/sockops): RESP framed in the program, every
#           command of the stream decided by a table whatever the sendmsg boundaries
#           (its example `allow`, GET and SET allowed; its correctness is the crate's
#           test, tests/redis_path.rs)
# Each is run with and without pipelining (-P 16).
# Usage (root): experiments/sockmap/run.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-3}
export DEBIAN_FRONTEND=noninteractive
dpkg -s clang libbpf-dev libelf-dev redis-server redis-tools >/dev/null 2>&1 ||
	apt-get install -y -q clang libbpf-dev libelf-dev redis-server redis-tools >/dev/null
inc=/usr/include/$(gcc -dumpmachine)
work=$(mktemp -d)
clang -O2 -g -target bpf -I"$inc" -c splice.bpf.c -o "$work/splice.bpf.o"
clang -O2 -g -target bpf -I"$inc" -c msg.bpf.c -o "$work/msg.bpf.o"
gcc -O2 -I"$inc" splice.c -o "$work/splice" -lbpf
gcc -O2 -I"$inc" msgload.c -o "$work/msgload" -lbpf
clang -O2 -g -target bpf -I"$inc" -c reply.bpf.c -o "$work/reply.bpf.o"
gcc -O2 -I"$inc" relay.c -o "$work/relay" -lbpf
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/bulkhead-release}"
cargo build --quiet --release -p bulkhead-sockops --example allow
allow="$CARGO_TARGET_DIR/release/examples/allow"
cgroup2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
pids=()
cleanup() {
	kill -INT "${pids[@]}" 2>/dev/null || true
	sleep 0.5
	redis-cli -p 6390 shutdown nosave >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
redis-server --bind 127.0.0.1 --port 6390 --save '' --appendonly no --daemonize yes >/dev/null
sleep 0.5
bench() { # port [-P 16] -> "SET GET" requests per second
	local port=$1
	shift
	timeout 90 redis-benchmark -p "$port" -c 50 -n 200000 -t set,get -q "$@" 2>&1 | tr '\r' '\n' |
		awk '/requests per second/ {printf "%s ", $2} END {print ""}'
}
(cd "$work" && exec ./splice 7000 6390 >/dev/null 2>&1) &
pids+=($!)
(cd "$work" && exec ./relay 7001 6390 0 >/dev/null 2>&1) &
pids+=($!)
sleep 0.5
for r in $(seq "$rounds"); do
	echo "round $r direct: $(bench 6390)"
	echo "round $r direct -P16: $(bench 6390 -P 16)"
	echo "round $r relay:  $(bench 7001)"
	# Its sockops program is on the root cgroup: only while it is measured.
	(cd "$work" && exec ./relay 7002 6390 1 >/dev/null 2>&1) &
	pids+=($!)
	sleep 0.5
	echo "round $r kreply: $(bench 7002)"
	kill "${pids[-1]}"
	sleep 0.5
	echo "round $r sk_skb: $(bench 7000)"
	(cd "$work" && exec ./msgload 2>/dev/null) &
	pids+=($!)
	sleep 1
	echo "round $r sk_msg: $(bench 6390)"
	kill -INT "${pids[-1]}"
	sleep 0.5
	"$allow" "$cgroup2" 127.0.0.1:6390 127.0.0.1 GET,SET 2>/dev/null &
	pids+=($!)
	sleep 1
	echo "round $r sockops: $(bench 6390)"
	echo "round $r sockops -P16: $(bench 6390 -P 16)"
	kill -INT "${pids[-1]}"
	sleep 0.5
done
