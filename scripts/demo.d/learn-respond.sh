#!/usr/bin/env bash
# Part 4 of the demo: see, learn, respond. Sourced by scripts/demo (which sets $B, step,
# note); runnable alone: scripts/demo.d/learn-respond.sh
set -euo pipefail
if [ -z "${B:-}" ]; then
  root="$(cd "$(dirname "$0")/../.." && pwd)"
  source "$root/scripts/setup"
  cd "$root"
  cargo build --quiet -p bulkhead-cli
  B="cargo run --quiet -p bulkhead-cli --"
  step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
  note() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
fi
BULKHEAD="$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')/debug/bulkhead"
export BULKHEAD
LL=demo-learn
D=/tmp/bulkhead-demo-learn
PORT=18443
PROBES=(--probe TCP/8080 --probe TCP/5432 --probe TCP/389 --probe TCP/6379 --probe TCP/8443 --probe UDP/53)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  $B lab down --name $LL >/dev/null 2>&1 || true
}
trap cleanup EXIT

note "Part 4: see, learn, respond. The example again, every group in Discover mode: nothing is refused, everything is recorded"
rm -rf $D && mkdir -p $D/cluster
cp examples/namespaces.yaml examples/workloads.yaml examples/policies.yaml examples/sensors.yaml examples/lab/l7.yaml $D/cluster/
sed 's/mode: Protect/mode: Discover/' examples/groups.yaml > $D/cluster/groups.yaml
# Alerts on lateral moves (a connection policy refuses) and on attacks found inside
# allowed connections go to a webhook (a real HTTP receiver in the node's namespace,
# where the agent runs).
cat > $D/cluster/respond.yaml <<'YAML'
apiVersion: bulkhead.io/v1
kind: ResponseRule
metadata: {name: lateral-moves-and-attacks}
spec:
  match: {types: [deny, sensor]}
  actions:
    - webhook: {url: "http://127.0.0.1:9099/bulkhead", retries: 3}
YAML
step grep -h "mode:" $D/cluster/groups.yaml
$B lab up -f $D/cluster --l7-proxy --name $LL -o json > $D/status.json
echo "lab $LL is up: $(grep -c '"node": ' $D/status.json) workloads, every agent with its L7 proxy"
for ns in $(ip netns list | awk '{print $1}' | grep "^bh-$LL\.node\."); do
  ip netns exec "$ns" python3 scripts/demo.d/webhook-receiver.py 9099 $D/webhook.jsonl &
  pids+=($!)
done
head -c 24 /dev/urandom | base64 > $D/token
$B serve --lab $LL -f $D/cluster --token-file $D/token --listen 127.0.0.1:$PORT > $D/serve.log 2>&1 &
pids+=($!)
api() { curl -sS -H "Authorization: Bearer $(cat $D/token)" "$@"; }
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.1; done

note "The applications' traffic: a real client (curl, redis-cli, psql, ldapsearch, dig) for every conversation the example's applications have"
$B analyze matrix -f examples/ --inventory /run/bulkhead/labs/$LL/inventory.yaml "${PROBES[@]}" -o json > $D/matrix.json
python3 scripts/demo.d/traffic.py $D/matrix.json $D/status.json > $D/traffic.txt
sed "s/^/$LL /" $D/traffic.txt | xargs -P 8 -L1 scripts/demo.d/client.sh
echo "$(wc -l < $D/traffic.txt) conversations:"; awk '{print "  " $3}' $D/traffic.txt | sort | uniq -c
sleep 1
step $B flows --lab $LL --since 10m --limit 5

note "Learn: the recorded flows become a policy; its diff against the hand-written one (examples/policies.yaml)"
step $B learn --lab $LL -f $D/cluster -o table
$B learn --lab $LL -f $D/cluster -o yaml > $D/learned.yaml
note "The proposal ($D/learned.yaml): $(grep -c '^kind: ' $D/learned.yaml) documents, $(grep -c '^      app: ' $D/learned.yaml) rules with the protocol the proxy detected; those of the Redis server and the card vault:"
python3 - $D/learned.yaml <<'PY'
import sys
for doc in open(sys.argv[1]).read().split("\n---\n"):
    if "kind: Policy" in doc and ("name: platform-redis}" in doc or "name: payments-card-vault}" in doc):
        print(doc.strip() + "\n---")
PY
step $B analyze replay --lab $LL -f $D/cluster --policy $D/learned.yaml

note "Protect: every group switched through the API, as the UI's mode switch does (the agents reload the file)"
for g in $(grep -h "metadata: {name:" $D/cluster/groups.yaml | sed 's/.*name: \(.*\)}/\1/'); do
  printf '%s: ' "$g"; api -X PUT -H 'content-type: application/json' -d '{"mode": "protect"}' "http://127.0.0.1:$PORT/api/v1/groups/$g/mode"; echo
done
sleep 2
vault=$(grep -A2 '"name": "payments/card-vault-0"' $D/status.json | sed -n 's/.*"ipv4": "\(.*\)".*/\1/p')
status=$(grep -A2 '"name": "us/credit-status-1"' $D/status.json | sed -n 's/.*"ipv4": "\(.*\)".*/\1/p')
note "A lateral move: from a compromised order-web pod, psql to the card vault's database"
step $B lab exec --name $LL eu/order-web-0 -- psql "host=$vault port=5432 user=postgres connect_timeout=3 sslmode=disable" -c 'select * from cards' || echo "(refused: no rule lets order-web reach the CDE)"
note "A SQL injection inside a connection policy allows (creditCheck -> creditStatus)"
step $B lab exec --name $LL eu/credit-check-0 -- curl -s -w ' %{http_code}\n' "http://$status:8080/v1/status?id=1%27%20OR%20%271%27%3D%271"
step $B lab exec --name $LL eu/credit-check-0 -- curl -s -o /dev/null -w '%{http_code}\n' "http://$status:8080/v1/status?id=42"
sleep 2

note "The webhook receiver got both ($D/webhook.jsonl):"
python3 - "$D/webhook.jsonl" <<'PY'
import json, sys
alerts = [json.loads(line) for line in open(sys.argv[1])]
for a in alerts:
    print(f'  {a["type"]:7} {a["severity"]:8} {a["summary"]}')
lateral = any(a["type"] == "deny" and "card-vault" in a["summary"] for a in alerts)
sqli = any(a["type"] == "sensor" and "sqli" in a["summary"] for a in alerts)
if not (lateral and sqli):
    sys.exit(f"missing: {'' if lateral else 'the lateral move '}{'' if sqli else 'the SQL injection'}")
PY
note "/metrics counts them"
api http://127.0.0.1:$PORT/metrics | grep -E '^bulkhead_(flows_total|events_total|sensor_hits_total|violations_total)' | grep -E 'deny|sensor|sqli' | head -12

note "The web UI (http://127.0.0.1:$PORT/?token=...) shows both: headless Chromium renders its pages"
ui() {
  chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=8000 "$@" 2>/dev/null
}
ui --dump-dom "http://127.0.0.1:$PORT/ui/?token=$(cat $D/token)#/flows?verdict=deny" > $D/ui-flows.html
ui --dump-dom "http://127.0.0.1:$PORT/ui/?token=$(cat $D/token)#/events" > $D/ui-events.html
ui --window-size=1400,900 --screenshot=$D/ui-graph.png "http://127.0.0.1:$PORT/ui/?token=$(cat $D/token)#/graph?violations=1" >/dev/null
python3 - $D/ui-flows.html $D/ui-events.html <<'PY'
import html, re, sys
for path, want in ((sys.argv[1], "card-vault"), (sys.argv[2], "sqli")):
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", open(path).read(), re.S)
    cells = [" | ".join(html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                        for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)) for r in rows]
    hits = [c for c in cells if want in c]
    print(f"  {path.rsplit('/', 1)[1]}: {len(cells)} rows; the one with {want}: {hits[0] if hits else 'NOT FOUND'}")
    if not hits:
        sys.exit(1)
PY
echo "  screenshot of the graph: $D/ui-graph.png"
step $B lab down --name $LL
