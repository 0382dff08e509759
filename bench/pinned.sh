#!/usr/bin/env bash
# A steadier A/B than `npm run bench` for work on the request path: meshlet and the undici floor are
# pinned to CPU 0, the upstream and wrk to CPU 1, so each proxy's throughput measures its own cost
# rather than its share of a contended machine. Prints meshlet/floor per round (higher is better;
# 1.0 = no overhead over the least undici forwarder). Needs wrk and taskset; 2+ CPUs.
#   bash bench/pinned.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
rounds=${1:-4}
npm run build --silent
port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
up=$(port); floor=$(port); inbound=$(port); outbound=$(port); admin=$(port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
taskset -c 1 node bench/upstream.js "$up" & pids+=($!)
taskset -c 0 node bench/undici-floor.js "$floor" "http://127.0.0.1:$up" & pids+=($!)
MESHLET__INBOUND__LISTEN="127.0.0.1:$inbound" MESHLET__OUTBOUND__LISTEN="127.0.0.1:$outbound" \
  MESHLET__ADMIN__LISTEN="127.0.0.1:$admin" MESHLET__INBOUND__PRIMARY="http://127.0.0.1:$up" \
  taskset -c 0 node bin/meshlet.js run --config config/minimal.yaml > /dev/null & pids+=($!)
sleep 2
for p in "$inbound" "$floor"; do taskset -c 1 wrk -t1 -c32 -d2s "http://127.0.0.1:$p/" > /dev/null; done
for i in $(seq "$rounds"); do
  a=$(taskset -c 1 wrk -t1 -c32 -d4s "http://127.0.0.1:$inbound/" | awk '/Requests\/sec/ {print $2}')
  b=$(taskset -c 1 wrk -t1 -c32 -d4s "http://127.0.0.1:$floor/" | awk '/Requests\/sec/ {print $2}')
  echo "round $i: meshlet $a req/s, floor $b req/s, ratio $(echo "scale=3; $a/$b" | bc)"
done
