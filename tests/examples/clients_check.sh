#!/usr/bin/env bash
# The example clients against the real example servers, on loopback with
# ports chosen by the kernel: kv_client.py against kv_server (commands as
# arguments, --together, --byte-by-byte, stdin, the line limit, a store per
# process), tcp_client.py and udp_client.py against echo_blocking,
# echo_blocking's refusal of --model event (exit 2), and the clients' lesson
# experiments against upper_server (udp --recv-size and --size, tcp --sticky,
# framed --split; with and without --nodelay).
#   usage: clients_check.sh KV_SERVER ECHO_BLOCKING UPPER_SERVER PREFORK_TOP
set -u

usage='usage: clients_check.sh KV_SERVER ECHO_BLOCKING UPPER_SERVER PREFORK_TOP'
kv_server=${1:?$usage}
echo_blocking=${2:?$usage}
upper_server=${3:?$usage}
prefork_top=${4:?$usage}
examples=$(cd "$(dirname "$0")/../../examples" && pwd)
kv_client=$examples/kv_server/kv_client.py
tcp_client=$examples/clients/tcp_client.py
udp_client=$examples/clients/udp_client.py
framed_client=$examples/clients/framed_client.py

work=$(mktemp -d "${TMPDIR:-/tmp}/clients_check.XXXXXX")
failures=0
runs=0
server_pid='' server_name='' server_out=''  # the server running now, if any
names=()                              # every --stats name used, for cleanup

# Stops the server running now, if any: SIGTERM, then up to 15 s for its
# graceful stop (its --graceful-timeout is 2 s), then SIGKILL. Sets $stop_status.
stop_server() {
  stop_status=
  [[ -n $server_pid ]] || return 0
  kill -TERM "$server_pid" 2>/dev/null
  for _ in $(seq 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  stop_status=$?
  server_pid=
}

cleanup() {
  stop_server
  local name
  for name in "${names[@]}"; do rm -f "/dev/shm/$name"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' TERM INT HUP  # so that a timeout's signal also runs cleanup

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
  if [[ "$2" == "$3" ]]; then
    echo "ok: $1"
  else
    fail "$1: got '${2//$'\n'/\\n}', expected '${3//$'\n'/\\n}'"
  fi
}

# start_server LINES PROGRAM ARGS...: starts PROGRAM with its own --stats
# name and waits (up to 10 s) until it printed LINES "listening" lines.
start_server() {
  local lines=$1 program=$2
  shift 2
  runs=$((runs + 1))
  server_name=clients_check_$$_$runs  # per pid and run: parallel runs never share a segment
  names+=("$server_name")
  server_out=$work/server$runs
  "$program" "$@" --graceful-timeout 2 --stats "$server_name" --allow-root \
    >"$server_out.out" 2>"$server_out.err" &
  server_pid=$!
  for _ in $(seq 100); do
    [[ $(grep -sc '^listening ' "$server_out.out") -ge $lines ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL: $(basename "$program") $* did not print $lines listening line(s):" >&2
  cat "$server_out.out" "$server_out.err" >&2
  exit 1
}

# port_of PROTOCOL: the port of the running server's listener.
port_of() {
  awk -v p="$1" '$1 == "listening" && $2 == p { n = split($3, a, ":"); print a[n]; exit }' \
    "$server_out.out"
}

# finish_server WHAT: stops the server and checks it stopped cleanly and left
# no scoreboard segment behind.
finish_server() {
  local name=$server_name
  stop_server
  expect_eq "$1: stopped by SIGTERM with exit status 0" "$stop_status" 0
  [[ -e /dev/shm/$name ]] && fail "$1: left /dev/shm/$name"
}

# client SCRIPT ARGS...: runs a client; its stdout in $out, stderr in $err,
# exit status in $status.
client() {
  local script=$1
  shift
  out=$(timeout 30 python3 "$script" --timeout 5 "$@" 2>"$work/client.err")
  status=$?
  err=$(<"$work/client.err")
}

# --- kv_server, one worker: one store ------------------------------------
start_server 1 "$kv_server" --tcp 127.0.0.1:0 --workers 1 --max-message 64
kv=$(port_of tcp)

client "$kv_client" --port "$kv" "GET colour" "SET colour deep blue" "GET colour" "DEL colour" \
  "DEL colour" "GET colour" "FLY away" "" QUIT
expect_eq "kv: commands as arguments" "$out" $'NIL\nOK\ndeep blue\n1\n0\nNIL\nERR unknown command\nERR unknown command\nBYE'
expect_eq "kv: every command answered: exit 0" "$status" 0

client "$kv_client" --port "$kv" "SET shared yes"
client "$kv_client" --port "$kv" "GET shared"
expect_eq "kv: one worker, one store: another connection sees the SET" "$out" yes

client "$kv_client" --port "$kv" --together "SET t 1" "GET t" "GET nothing" QUIT "GET t"
expect_eq "kv: --together: replies in order, up to BYE" "$out" $'OK\n1\nNIL\nBYE'
expect_eq "kv: --together: a command after QUIT is unanswered: exit 1" "$status" 1
[[ $err == *"no reply to 1 command(s): 'GET t'"* ]] || fail "kv: --together: stderr was '$err'"

client "$kv_client" --port "$kv" --byte-by-byte --delay-ms 0 "GET t" "SET t 2" "GET t"
expect_eq "kv: --byte-by-byte: half lines are waited for" "$out" $'1\nOK\n2'

out=$(printf 'GET t\n\nDEL t\nGET t\nQUIT\nGET shared\n' |
  timeout 30 python3 "$kv_client" --port "$kv" --timeout 5 2>"$work/client.err")
status=$?
expect_eq "kv: interactive from stdin, empty lines skipped, ends at BYE" "$out" $'2\n1\nNIL\nBYE'
expect_eq "kv: interactive: exit 0" "$status" 0

long="SET big $(printf 'x%.0s' $(seq 100))"
client "$kv_client" --port "$kv" "GET shared" "$long" "GET shared"
expect_eq "kv: a line over --max-message: ERR line too long" "$out" $'yes\nERR line too long'
expect_eq "kv: the server closed after it: exit 1" "$status" 1
[[ $err == *"connection closed by server"* ]] || fail "kv: line too long: stderr was '$err'"
client "$kv_client" --port "$kv" --together "GET shared" "$long" "GET shared"
expect_eq "kv: --together with a line over the limit" "$out" $'yes\nERR line too long'

client "$kv_client" --port "$kv" --together
expect_eq "kv: --together without commands: usage error" "$status" 2
client "$kv_client" --port "$kv" $'GET a\nGET b'
expect_eq "kv: a command with a line break: usage error" "$status" 2
finish_server kv_server

# --- kv_server, a process per connection: a store per connection ---------
start_server 1 "$kv_server" --tcp 127.0.0.1:0 --workers 1 --model fork-per-connection
kv=$(port_of tcp)
client "$kv_client" --port "$kv" "SET a 1" "GET a"
expect_eq "kv fork-per-connection: the connection sees its own SET" "$out" $'OK\n1'
client "$kv_client" --port "$kv" "GET a"
expect_eq "kv fork-per-connection: the next connection does not" "$out" NIL
finish_server "kv_server --model fork-per-connection"

# --- kv_server, four workers: four stores ---------------------------------
# reuseport spreads connections over the workers by a hash of the client's
# port: 16 connections all landing on the SET's worker has odds of 4^-16.
start_server 1 "$kv_server" --tcp 127.0.0.1:0 --workers 4 --accept reuseport
kv=$(port_of tcp)
client "$kv_client" --port "$kv" "SET a 1"
answers=
for _ in $(seq 16); do
  client "$kv_client" --port "$kv" "GET a"
  answers+="$out "
done
[[ $answers =~ ^((1|NIL)\ )+$ ]] || fail "kv --workers 4: unexpected answers: $answers"
if [[ $answers == *NIL* ]]; then
  echo "ok: kv --workers 4: some workers do not have the SET ($answers)"
else
  fail "kv --workers 4: every connection saw the SET: $answers"
fi
finish_server "kv_server --workers 4"

# --- echo_blocking: the lesson's socketserver handlers --------------------
for model in thread-per-connection fork-per-connection; do
  start_server 2 "$echo_blocking" --tcp 127.0.0.1:0 --udp 127.0.0.1:0 --model "$model"
  client "$tcp_client" --port "$(port_of tcp)" hello world
  expect_eq "echo_blocking $model: tcp_client.py" "$out" $'b\'HELLO\'\nb\'WORLD\''
  expect_eq "echo_blocking $model: tcp_client.py exit 0" "$status" 0
  client "$udp_client" --port "$(port_of udp)" --count 2 hello
  expect_eq "echo_blocking $model: udp_client.py" "$out" $'b\'HELLO\'\nb\'HELLO\''
  expect_eq "echo_blocking $model: udp_client.py exit 0" "$status" 0
  finish_server "echo_blocking --model $model"
done

# --- echo_blocking --model event: refused before it listens ---------------
runs=$((runs + 1))
name=clients_check_$$_$runs
names+=("$name")
timeout 30 "$echo_blocking" --tcp 127.0.0.1:0 --model event --stats "$name" \
  >"$work/event.out" 2>"$work/event.err"
expect_eq "echo_blocking --model event: exit 2" "$?" 2
grep -q 'needs a blocking model' "$work/event.err" ||
  fail "echo_blocking --model event: stderr was '$(<"$work/event.err")'"
grep -q '^listening' "$work/event.out" && fail "echo_blocking --model event: it listened"
[[ -e /dev/shm/$name ]] && fail "echo_blocking --model event: left /dev/shm/$name"

# --- upper_server: the lesson's experiments -------------------------------
start_server 3 "$upper_server" --tcp 127.0.0.1:0 --framed 127.0.0.1:0 --udp 127.0.0.1:0 \
  --workers 2
tcp=$(port_of tcp) framed=$(port_of framed) udp=$(port_of udp)

# shape TEXT: TEXT with every number replaced by N (measured counts and times).
shape() { sed -E 's/[0-9]+(\.[0-9]+)?/N/g' <<<"$1"; }

# The lesson's recvfrom(1): one byte of each reply, the rest lost, and the
# next read gets the next datagram (W, not the E of HELLO).
client "$udp_client" --port "$udp" --recv-size 1 hello world
expect_eq "udp --recv-size 1: one byte of each datagram, the rest lost" "$out" \
  "sent 5 bytes b'hello'; recvmsg(1) returned 1 byte b'H': truncated (MSG_TRUNC): the datagram had 5 bytes, 4 bytes lost
sent 5 bytes b'world'; recvmsg(1) returned 1 byte b'W': truncated (MSG_TRUNC): the datagram had 5 bytes, 4 bytes lost"
expect_eq "udp --recv-size 1: exit 0" "$status" 0
client "$udp_client" --port "$udp" --recv-size 3 hello hi
expect_eq "udp --recv-size 3: a datagram that fits comes whole after a cut one" "$out" \
  "sent 5 bytes b'hello'; recvmsg(3) returned 3 bytes b'HEL': truncated (MSG_TRUNC): the datagram had 5 bytes, 2 bytes lost
sent 2 bytes b'hi'; recvmsg(3) returned 2 bytes b'HI': whole"

# The largest datagram goes through whole; one byte more is refused by the
# client's kernel, so the server never sees (or counts) it.
client "$udp_client" --port "$udp" --size 65507
expect_eq "udp --size 65507: the largest IPv4 datagram, whole" "$out" \
  "sent 65507 bytes b'abcdefghijklmnop'...; recvmsg(65535) returned 65507 bytes b'ABCDEFGHIJKLMNOP'...: whole"
client "$udp_client" --port "$udp" --size 65508 --recv-size 1024
expect_eq "udp --size 65508: refused by sendto()" "$out" \
  "sent nothing: sendto() refused a 65508-byte datagram: Message too long (EMSGSIZE): a UDP datagram over IPv4 carries at most 65507 bytes, so a larger one never reaches the server"
expect_eq "udp --size 65508: exit 0" "$status" 0
client "$udp_client" --port "$udp" --size 2000 --recv-size 1024
expect_eq "udp --size 2000 --recv-size 1024: the lesson's recvfrom(1024) cuts it" "$out" \
  "sent 2000 bytes b'abcdefghijklmnop'...; recvmsg(1024) returned 1024 bytes b'ABCDEFGHIJKLMNOP'...: truncated (MSG_TRUNC): the datagram had 2000 bytes, 976 bytes lost"
udp_counts=$(timeout 10 "$prefork_top" --json --once "$server_name" 2>/dev/null | python3 -c '
import json, sys
totals = json.loads(sys.stdin.readline())["totals"]
print(totals["listeners"][2]["requests"], totals["error_kinds"]["truncated_datagram"])')
expect_eq "udp: the server handled 6 datagrams whole and truncated none" "$udp_counts" "6 0"
client "$udp_client" --port "$udp" --size 10 hello
expect_eq "udp --size with messages: usage error" "$status" 2

# Sticky packets: three send()s, one recv() returns the three replies glued.
for nodelay in '' --nodelay; do
  mode=${nodelay:+TCP_NODELAY}
  mode=${mode:-Nagle on}
  nodelay_label=${nodelay:-(Nagle on)}
  client "$tcp_client" --port "$tcp" --sticky $nodelay hello world egon
  expect_eq "tcp --sticky $nodelay_label: one recv() returns the replies merged" \
    "$(sed -n 3p <<<"$out")" "b'HELLOWORLDEGON'"
  expect_eq "tcp --sticky $nodelay_label: the report" "$(sed -n 2p <<<"$out")" \
    "14 reply bytes waiting (FIONREAD); one recv(1024) returned 14:"
  expect_eq "tcp --sticky $nodelay_label: exit 0" "$status" 0
  client "$tcp_client" --port "$tcp" --sticky $nodelay --count 20 hi
  expect_eq "tcp --sticky --count 20 $nodelay_label: the shape" "$(shape "$out")" \
    "N send() calls went out as N TCP segments ($mode)
N reply bytes waiting (FIONREAD); one recv(N) returned N:
b'$(printf 'HI%.0s' $(seq 20))'"
  # Each send() is at most one segment (on loopback with TCP_NODELAY most
  # often exactly one, but a full congestion window makes the kernel glue).
  segments=$(awk 'NR == 1 { print $7 }' <<<"$out")
  if [[ $segments =~ ^[0-9]+$ ]] && ((segments >= 1 && segments <= 20)); then
    echo "ok: tcp --sticky --count 20 $nodelay_label: 20 send() calls, $segments segments"
  else
    fail "tcp --sticky --count 20 $nodelay_label: segments '$segments'"
  fi
done
client "$tcp_client" --port "$tcp" --sticky
expect_eq "tcp --sticky without messages: usage error" "$status" 2

# Write, write, read: every request answered, in both Nagle modes.
for nodelay in '' --nodelay; do
  mode=${nodelay:+TCP_NODELAY}
  mode=${mode:-Nagle on}
  nodelay_label=${nodelay:-(Nagle on)}
  client "$framed_client" --port "$framed" --split $nodelay --count 2 hello bye
  expect_eq "framed --split $nodelay_label: every request answered, times and a summary" \
    "$(shape "$out")" "b'HELLO' in N ms
b'HELLO' in N ms
b'BYE' in N ms
b'BYE' in N ms
N requests, header and payload in two send() calls ($mode): median N ms, max N ms
$(if [[ -n $nodelay ]]; then
      echo 'TCP_NODELAY: each payload went out at once, without waiting for the ACK of its header'
    else
      echo "a request of ~N ms is its payload held back by Nagle's algorithm until the server's delayed ACK of the header (--nodelay sends it at once)"
    fi)"
  expect_eq "framed --split $nodelay_label: exit 0" "$status" 0
done
client "$framed_client" --port "$framed" --split --sticky hello
expect_eq "framed --split --sticky: usage error" "$status" 2
finish_server upper_server

if ((failures > 0)); then
  echo "clients_check: $failures check(s) failed" >&2
  exit 1
fi
echo "clients_check: all checks passed"
