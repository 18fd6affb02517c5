#!/usr/bin/env bash
# Runs process_demo and checks the facts it is meant to teach.
#   usage: process_demo_check.sh PATH/TO/process_demo
# Reads the labelled lines by column: "[mode]" in 1-8, who in 9-16, key in
# 17-34, value from 35 (the layout of say() in examples/process_demo.cpp).
set -u

demo=${1:?usage: process_demo_check.sh PATH/TO/process_demo}
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
  if [[ "$2" == "$3" ]]; then
    echo "ok: $1 ($2)"
  else
    fail "$1: got '$2', expected '$3'"
  fi
}

# value MODE WHO KEY: the first word of that line's value ("" when absent).
value() {
  awk -v m="[$1]" -v w="$2" -v k="$3" '
    function trim(s) { sub(/ +$/, "", s); return s }
    trim(substr($0, 1, 8)) == m && trim(substr($0, 9, 8)) == w &&
        trim(substr($0, 17, 18)) == k {
      split(substr($0, 35), a, " "); print a[1]; exit
    }' <<<"$out"
}

# full MODE WHO KEY: the whole value and note of that line.
full() {
  awk -v m="[$1]" -v w="$2" -v k="$3" '
    function trim(s) { sub(/ +$/, "", s); return s }
    trim(substr($0, 1, 8)) == m && trim(substr($0, 9, 8)) == w &&
        trim(substr($0, 17, 18)) == k { print substr($0, 35); exit }' <<<"$out"
}

# A hung child must not hang the test.
out=$(timeout 30 "$demo" --both 2>&1)
status=$?
echo "$out"
echo "----"
expect_eq "process_demo --both exit status" "$status" 0

for mode in fork spawn; do
  parent=$(value "$mode" parent pid)
  child=$(value "$mode" child pid)
  [[ -n "$parent" && -n "$child" ]] || fail "$mode: pid lines missing"
  [[ "$parent" != "$child" ]] || fail "$mode: parent and child have the same pid"
  expect_eq "$mode: child's getppid() is the parent pid" "$(value "$mode" child 'getppid()')" "$parent"
  if [[ $mode == fork ]]; then
    started_key='fork() returned' hello="hello from forked pid $child"
  else
    started_key='process.id()' hello="hello from spawned pid $child"
  fi
  expect_eq "$mode: parent saw the child's pid" "$(value "$mode" parent "$started_key")" "$child"
  expect_eq "$mode: parent read the child's pipe message" "$(full "$mode" parent 'pipe read')" \
    "\"$hello\""
  expect_eq "$mode: child was a zombie before reaping" "$(value "$mode" parent 'child state')" Z
  expect_eq "$mode: child reaped with its exit status" "$(full "$mode" parent 'waitpid()')" \
    "$child exited, status 42"
done

# Memory: the forked child's write stays in its copy.
before=$(value fork parent counter)
expect_eq "fork: child starts with a copy of the parent's counter" "$(value fork child counter)" "$before"
changed=$(value fork child 'counter now')
[[ -n "$changed" && "$changed" != "$before" ]] || fail "fork: child did not change its counter"
expect_eq "fork: parent's counter unchanged after the child wrote" \
  "$(value fork parent 'counter after')" "$before"
# A new program image starts from the initial value, not the parent's.
expect_eq "spawn: child has a fresh counter" "$(value spawn child counter)" 0

# Descriptors: fork keeps all; exec drops FD_CLOEXEC and keeps the passed one.
cloexec=$(value fork parent 'cloexec fd')
pipe=$(value fork parent 'pipe fd')
expect_eq "fork: child still has the FD_CLOEXEC fd" "$(value fork child "cloexec fd $cloexec")" open
expect_eq "fork: child has the pipe fd" "$(value fork child "pipe fd $pipe")" open
cloexec=$(value spawn parent 'cloexec fd')
pipe=$(value spawn parent 'pipe fd')
expect_eq "spawn: FD_CLOEXEC fd absent in the new program" \
  "$(value spawn child "cloexec fd $cloexec")" closed
expect_eq "spawn: passed fd present in the new program" "$(value spawn child "pipe fd $pipe")" open

# One mode at a time, and the command line.
out=$(timeout 30 "$demo" --fork 2>&1)
expect_eq "--fork exit status" "$?" 0
grep -q '^\[spawn\]' <<<"$out" && fail "--fork also ran the spawn demo"
out=$(timeout 30 "$demo" --spawn 2>&1)
expect_eq "--spawn exit status" "$?" 0
grep -q '^\[fork\]' <<<"$out" && fail "--spawn also ran the fork demo"
expect_eq "spawn alone: getppid() is the parent pid" "$(value spawn child 'getppid()')" \
  "$(value spawn parent pid)"
"$demo" --help >/dev/null 2>&1
expect_eq "--help exit status" "$?" 0
"$demo" --bogus >/dev/null 2>&1
expect_eq "bad flag exit status" "$?" 2

if ((failures > 0)); then
  echo "process_demo_check: $failures check(s) failed" >&2
  exit 1
fi
echo "process_demo_check: all checks passed"
