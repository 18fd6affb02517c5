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

# Orphans: the parent exits first. child1 is adopted by the nearest subreaper
# (process_demo makes itself one), child2 dies by its PR_SET_PDEATHSIG.
out=$(timeout 30 "$demo" --orphan 2>&1)
status=$?
echo "$out"
echo "----"
expect_eq "--orphan exit status" "$status" 0
# The lines in their order: each process speaks in its turn.
expect_eq "orphan: the lines in order" "$(awk '/^\[orph\]/ {
    w = substr($0, 9, 8); k = substr($0, 17, 18); sub(/ +$/, "", w); sub(/ +$/, "", k)
    printf "%s:%s,", w, k }' <<<"$out")" \
  "demo:pid,demo:subreaper,parent:pid,parent:getppid(),child1:pid,child1:getppid(),child2:pid,\
child2:PR_SET_PDEATHSIG,child2:getppid(),parent:exit,demo:waitpid(parent),child1:getppid() now,\
child1:exit,demo:waitpid(child1),demo:waitpid(child2),"
demo_pid=$(value orph demo pid)
parent=$(value orph parent pid)
child1=$(value orph child1 pid)
child2=$(value orph child2 pid)
[[ -n "$demo_pid" && -n "$parent" && -n "$child1" && -n "$child2" ]] || fail "orphan: pid lines missing"
expect_eq "orphan: the parent's parent is process_demo" "$(value orph parent 'getppid()')" "$demo_pid"
expect_eq "orphan: child1's parent is the parent" "$(value orph child1 'getppid()')" "$parent"
expect_eq "orphan: child2's parent is the parent, after prctl" "$(value orph child2 'getppid()')" \
  "$parent"
expect_eq "orphan: the parent exited" "$(full orph demo 'waitpid(parent)')" "$parent exited, status 0"
expect_eq "orphan: child1 adopted by process_demo, the subreaper" \
  "$(value orph child1 'getppid() now')" "$demo_pid"
expect_eq "orphan: child1 reaped by process_demo" "$(full orph demo 'waitpid(child1)')" \
  "$child1 exited, status 0"
expect_eq "orphan: child2 killed by SIGTERM when its parent died" \
  "$(full orph demo 'waitpid(child2)')" "$child2 killed by signal 15  (PR_SET_PDEATHSIG)"
for pid in $parent $child1 $child2; do
  [[ -e /proc/$pid ]] && fail "orphan: process $pid is still there"
done

# Copy-on-write: after fork, the child's reads copy no page and its writes one
# page each. Counts of the kernel's page faults, not timings: a write faults
# once per page whatever the machine's speed; a read faults not at all, but
# leave room (a fault or two of the process's own) before calling it wrong.
out=$(timeout 30 "$demo" --cow 2>&1)
status=$?
echo "$out"
echo "----"
expect_eq "--cow exit status" "$status" 0
pages=$(value cow parent 'buffer pages')
reading=$(value cow child 'faults reading')
writing=$(value cow child 'faults writing')
dirty=$(value cow child Private_Dirty)
dirty_now=$(value cow child 'Private_Dirty now')
if [[ ! $pages =~ ^[0-9]+$ || ! $reading =~ ^[0-9]+$ || ! $writing =~ ^[0-9]+$ ||
      ! $dirty =~ ^[0-9]+$ || ! $dirty_now =~ ^[0-9]+$ ]]; then
  fail "cow: figures missing (pages '$pages', faults '$reading' '$writing', dirty '$dirty' '$dirty_now')"
else
  if ((writing >= 8 * reading + pages / 2)); then
    echo "ok: cow: writing faults once per page ($writing for $pages pages), reading not ($reading)"
  else
    fail "cow: $writing faults writing, $reading reading $pages pages: expected >= 8 × $reading + $pages / 2"
  fi
  page_kb=$(($(getconf PAGESIZE) / 1024))
  if ((dirty_now - dirty >= pages * page_kb * 3 / 4)); then
    echo "ok: cow: the child's private memory grew by the copies ($dirty -> $dirty_now kB)"
  else
    fail "cow: Private_Dirty $dirty -> $dirty_now kB, expected + $((pages * page_kb * 3 / 4)) kB or more"
  fi
fi
expect_eq "cow: the parent's memory is unchanged" "$(value cow parent 'buffer after')" unchanged
expect_eq "cow: the child exited 0" "$(full cow parent 'waitpid()' | awk '{print $2, $3, $4}')" \
  "exited, status 0"

# One mode at a time, and the command line.
out=$(timeout 30 "$demo" --fork 2>&1)
expect_eq "--fork exit status" "$?" 0
grep -q '^\[spawn\]' <<<"$out" && fail "--fork also ran the spawn demo"
out=$(timeout 30 "$demo" --spawn 2>&1)
expect_eq "--spawn exit status" "$?" 0
grep -q '^\[fork\]' <<<"$out" && fail "--spawn also ran the fork demo"
expect_eq "spawn alone: getppid() is the parent pid" "$(value spawn child 'getppid()')" \
  "$(value spawn parent pid)"
for mode in orphan cow; do
  grep -Eq '^\[(fork|spawn)\]' <<<"$(timeout 30 "$demo" --$mode 2>&1)" &&
    fail "--$mode also ran the fork or spawn demo"
done
grep -Eq '^\[(orph|cow)\]' <<<"$(timeout 30 "$demo" --both 2>&1)" &&
  fail "--both also ran the orphan or cow demo"
out=$(timeout 60 "$demo" --all 2>&1)
expect_eq "--all exit status" "$?" 0
expect_eq "--all runs the four demos" "$(grep -c '^== ' <<<"$out")" 4
for tag in fork spawn orph cow; do
  grep -q "^\[$tag\]" <<<"$out" || fail "--all did not run [$tag]"
done
help=$("$demo" --help 2>&1)
expect_eq "--help exit status" "$?" 0
for flag in --fork --spawn --both --orphan --cow --all; do
  grep -q -- "  $flag " <<<"$help" || fail "--help does not name $flag"
done
"$demo" --bogus >/dev/null 2>&1
expect_eq "bad flag exit status" "$?" 2

if ((failures > 0)); then
  echo "process_demo_check: $failures check(s) failed" >&2
  exit 1
fi
echo "process_demo_check: all checks passed"
