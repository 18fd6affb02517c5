#!/usr/bin/env bash
# Smoke test of prefork-bench against the real upper_server: for each target,
# 200 checked requests on 4 connections must all succeed, the JSON must hold
# the documented keys, and the server's scoreboard must have counted them.
#   usage: prefork_bench_smoke.sh UPPER_SERVER PREFORK_BENCH PREFORK_TOP
set -u

server=${1:?usage: prefork_bench_smoke.sh UPPER_SERVER PREFORK_BENCH PREFORK_TOP}
bench=${2:?usage: prefork_bench_smoke.sh UPPER_SERVER PREFORK_BENCH PREFORK_TOP}
top=${3:?usage: prefork_bench_smoke.sh UPPER_SERVER PREFORK_BENCH PREFORK_TOP}

name=prefork_bench_smoke_$$  # per pid: parallel runs never share a segment
work=$(mktemp -d)
server_pid=
failures=0

cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -f "/dev/shm/$name"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' TERM INT HUP  # so that a timeout's signal also runs cleanup

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# shellcheck source=smoke_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/smoke_common.sh"
expect_flag_error "$bench" --no-such-flag
expect_flag_error "$bench" --connections --json  # a missing value, not "--json"

"$server" --tcp 127.0.0.1:0 --framed 127.0.0.1:0 --udp 127.0.0.1:0 --workers 2 --stats "$name" \
  --allow-root >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 100); do
  [[ $(grep -c '^listening ' "$work/server.out") -ge 3 ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
address_of() { awk -v p="$1" '$1 == "listening" && $2 == p { print $3; exit }' "$work/server.out"; }
if [[ -z $(address_of framed) || -z $(address_of tcp) || -z $(address_of udp) ]]; then
  echo "FAIL: upper_server did not print its three listening lines" >&2
  cat "$work/server.out" "$work/server.err" >&2
  exit 1
fi

# The scoreboard's total of requests served, or "" when it cannot be read.
served() {
  timeout 10 "$top" --json --once "$name" 2>/dev/null |
    python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())["totals"]["requests"])' \
      2>/dev/null
}

for target in framed tcp udp; do
  address=$(address_of "$target")
  before=$(served)
  timeout 60 "$bench" --target "$target" --address "$address" --requests 200 --connections 4 \
    --json --check upper >"$work/$target.json" 2>"$work/$target.err"
  status=$?
  after=$(served)
  [[ $status -eq 0 ]] || fail "$target: prefork-bench exited $status: $(head -c 500 "$work/$target.err")"
  if python3 - "$target" "$work/$target.json" <<'EOF'; then
import json, sys
target, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    doc = json.load(f)
problems = []
def expect(ok, what):
    if not ok:
        problems.append(what)
expect(doc["target"]["protocol"] == target, "target.protocol is %r" % doc["target"]["protocol"])
expect(doc["requests"] == 200, "requests is %r, expected 200" % doc["requests"])
expect(doc["errors"]["total"] == 0, "errors: %r %r" % (doc["errors"], doc.get("error_details")))
for key in ("p50", "p90", "p99", "p999", "max", "mean"):
    value = doc["latency_us"].get(key)
    expect(isinstance(value, (int, float)) and value > 0, "latency_us.%s is %r" % (key, value))
expect(doc["latency_us"]["p50"] <= doc["latency_us"]["p99"] <= doc["latency_us"]["max"],
       "percentiles out of order: %r" % doc["latency_us"])
expect(doc["throughput_rps"] > 0 and doc["duration_s"] > 0, "no throughput or duration")
for key in ("user_s", "sys_s", "percent_of_one_core"):
    expect(key in doc["client_cpu"], "client_cpu.%s missing" % key)
for key in ("nproc", "cpu_model", "kernel"):
    expect(key in doc["machine"], "machine.%s missing" % key)
for problem in problems:
    print("FAIL: %s: %s" % (target, problem), file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
    echo "ok: $target: 200 requests, JSON as documented"
  else
    fail "$target: JSON check ($(head -c 300 "$work/$target.json"))"
  fi
  # Raw TCP counts one request per chunk read: never fewer than the requests.
  if [[ -z $before || -z $after ]]; then
    fail "$target: prefork-top --json --once $name gave no totals.requests"
  elif ((after - before < 200)); then
    fail "$target: the scoreboard counted $((after - before)) requests, expected at least 200"
  else
    echo "ok: $target: the scoreboard counted $((after - before)) requests"
  fi
done

# A server that accepts connections (the kernel's queue does) and never
# answers: every request is a failure, every connection starved, exit 1,
# even when the run ends before the requests' --timeout.
starver_port_file=$work/starver.port
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
with open(sys.argv[1], "w") as f:
    f.write(str(s.getsockname()[1]))
time.sleep(60)
' "$starver_port_file" &
starver_pid=$!
for _ in $(seq 100); do [[ -s $starver_port_file ]] && break; sleep 0.05; done
timeout 60 "$bench" --target framed --address "127.0.0.1:$(cat "$starver_port_file")" \
  --duration 0.5 --warmup 0 --timeout 1000 --connections 4 --json >"$work/starved.json" 2>/dev/null
status=$?
kill "$starver_pid" 2>/dev/null
wait "$starver_pid" 2>/dev/null
if [[ $status -ne 1 ]]; then
  fail "starving server: prefork-bench exited $status, expected 1"
elif ! python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
sys.exit(0 if doc["unfinished"]["starved_connections"] == 4 and doc["errors"]["timeout"] >= 4 else 1)
' "$work/starved.json"; then
  fail "starving server: $(head -c 400 "$work/starved.json")"
else
  echo "ok: a starving server: 4 connections starved, their requests timed out, exit 1"
fi

if ((failures > 0)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "all ok"
