#!/usr/bin/env bash
# Installs a built prefork tree into a temporary prefix, builds the outside
# project in app/ against it with find_package(prefork), and runs the result
# as a real server: --help; then, with fork and with spawn workers, one framed
# request, SIGTERM, exit status 0, no worker and no scoreboard left behind.
#
#   check.sh PREFORK_BUILD_DIR [CONSUMER_SOURCE_DIR]
#
# Exit 0: pass; 77: skipped (sanitizer build); anything else: failure.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 PREFORK_BUILD_DIR [CONSUMER_SOURCE_DIR]" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
source_dir=${2:-$(cd "$(dirname "$0")" && pwd)/app}
cache=$build_dir/CMakeCache.txt

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

[[ -f $cache ]] || fail "$build_dir is not a configured CMake build tree"
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$cache"; }

# A sanitizer build's static library needs the sanitizer runtimes at link
# time, which the package rightly does not export: nothing to check there.
# (PREFORK_SANITIZE: ON, address or thread.)
sanitize=$(cache_value PREFORK_SANITIZE)
if [[ ! ${sanitize,,} =~ ^(off|false|no|n|0|)$ ]]; then
  echo "SKIP: $build_dir is a PREFORK_SANITIZE=$sanitize build"
  exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/prefork-consumer.XXXXXX")
stats=prefork_consumer_$$
server_pid=
worker_pids=()

# True while the process exists and is not a zombie.
alive() {
  local state
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

cleanup() {
  local pid
  if [[ -n $server_pid ]] && alive "$server_pid"; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$server_pid" || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  for pid in "${worker_pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "/dev/shm/$stats"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

echo "== install $build_dir into $work/prefix"
cmake --install "$build_dir" --prefix "$work/prefix"

package_dir=$work/prefix/$(cache_value PREFORK_INSTALL_CMAKEDIR)
[[ -f $package_dir/preforkConfig.cmake ]] || fail "no preforkConfig.cmake in $package_dir"
if grep -rn -e '-Werror' -e 'fsanitize' "$package_dir"; then
  fail "the installed package exports in-tree-only flags"
fi

echo "== configure and build $source_dir"
generator=$(cache_value CMAKE_GENERATOR)
cmake -S "$source_dir" -B "$work/build" -G "$generator" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$(cache_value CMAKE_CXX_COMPILER)" \
  -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
found=$(sed -n 's/^prefork_DIR:[A-Z]*=//p' "$work/build/CMakeCache.txt")
[[ $found == "$package_dir" ]] || fail "find_package found prefork in '$found', not in $package_dir"
cmake --build "$work/build" --parallel 2
consumer=$work/build/consumer

echo "== $consumer --help"
"$consumer" --help >"$work/help.out" || fail "--help exited with status $?"
[[ -s $work/help.out ]] || fail "--help printed nothing"

# serve_once MODE: starts the consumer with --start MODE, checks one framed
# request, stops it with SIGTERM and checks that nothing is left behind.
serve_once() {
  local mode=$1 port='' status=0 pid children
  local -a workers=()
  echo "== start $consumer --start $mode"
  "$consumer" --framed 127.0.0.1:0 --workers 1 --start "$mode" --stats "$stats" \
    --allow-root >"$work/server.out" 2>"$work/server.err" &
  server_pid=$!

  for _ in $(seq 200); do
    port=$(sed -n 's/^listening framed 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/server.out" | head -n1)
    [[ -n $port ]] && break
    if ! alive "$server_pid"; then
      cat "$work/server.err" >&2
      fail "the server exited before listening"
    fi
    sleep 0.1
  done
  if [[ -z $port ]]; then
    cat "$work/server.out" "$work/server.err" >&2
    fail "no 'listening framed 127.0.0.1:PORT' line on stdout within 20 s"
  fi
  echo "listening on port $port (master pid $server_pid)"
  [[ -e /dev/shm/$stats ]] || fail "no scoreboard at /dev/shm/$stats"

  echo "== one frame"
  python3 - "$port" <<'EOF'
import socket, struct, sys

def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data

payload = b"hello prefork"
expected = b"consumer:" + payload[::-1]
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as sock:
    sock.sendall(struct.pack(">I", len(payload)) + payload)
    (length,) = struct.unpack(">I", read_exactly(sock, 4))
    reply = read_exactly(sock, length)
if reply != expected:
    sys.exit(f"reply {reply!r}, expected {expected!r}")
print(f"reply {reply!r}")
EOF

  # The master's children: its workers, which must be gone after the stop.
  children=/proc/$server_pid/task/$server_pid/children
  if [[ -r $children ]]; then
    read -r -a workers <"$children" || true
  fi
  worker_pids+=("${workers[@]}")
  echo "workers: ${workers[*]:-unknown}"

  echo "== SIGTERM $server_pid"
  kill -TERM "$server_pid"
  for _ in $(seq 300); do
    alive "$server_pid" || break
    sleep 0.1
  done
  if alive "$server_pid"; then
    fail "the master is still running 30 s after SIGTERM"
  fi
  wait "$server_pid" || status=$?
  server_pid=
  if [[ $status -ne 0 ]]; then
    cat "$work/server.err" >&2
    fail "the master exited with status $status after SIGTERM"
  fi
  for pid in "${workers[@]}"; do
    if alive "$pid"; then
      fail "worker $pid outlived its master"
    fi
  done
  if [[ -e /dev/shm/$stats ]]; then
    fail "/dev/shm/$stats is still there after the master exited"
  fi
}

serve_once fork
# spawn re-runs the installed program in its worker role (LISTEN_FDS).
serve_once spawn

echo "consumer_find_package: OK"
