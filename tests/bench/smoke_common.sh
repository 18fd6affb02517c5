# What the benchmark smoke tests share; sourced, with $root set to the
# source tree. Each test then checks its own output in $out.

# A new scratch directory in $out, removed however the test ends.
make_scratch() {
  out=$(mktemp -d "${TMPDIR:-/tmp}/$1-smoke.XXXXXX")
  trap 'rm -rf "$out"' EXIT
}

# bench/NAME with a bad flag must be a usage error (exit 2), before anything runs.
expect_usage_error() {
  local name=$1 status=0
  "$root/bench/$name" --no-such-flag >/dev/null 2>&1 || status=$?
  if [[ $status -ne 2 ]]; then
    echo "FAIL: bench/$name --no-such-flag exited $status, expected 2" >&2
    exit 1
  fi
}

# PROGRAM ARGS... must be a usage error: exit 2, and on stderr one line
# naming the problem, then the hint "try 'PROGRAM --help'".
expect_flag_error() {
  local program=$1 name status=0 err
  shift
  name=$(basename "$program")
  err=$("$program" "$@" 2>&1 >/dev/null) || status=$?
  if [[ $status -ne 2 || $(printf '%s\n' "$err" | wc -l) -ne 2 ||
        ${err##*$'\n'} != "try '$name --help'" ]]; then
    echo "FAIL: $name $* exited $status, expected 2, an error line and a hint; its stderr:" >&2
    printf '%s\n' "$err" >&2
    exit 1
  fi
}

# bench/NAME --quick ARGS... into $out; on failure, its stderr and exit 1.
# Keeps its pid in $bench_pid and the prefork_* names in /dev/shm before it
# started in $out/shm.before, for expect_no_segments.
run_quick() {
  local name=$1 status=0
  shift
  list_segments >"$out/shm.before"
  "$root/bench/$name" --quick --out "$out" "$@" >"$out/stdout" 2>"$out/stderr" &
  bench_pid=$!
  wait "$bench_pid" || status=$?
  if [[ $status -ne 0 ]]; then
    echo "FAIL: bench/$name --quick exited $status; its stderr:" >&2
    tail -30 "$out/stderr" >&2
    exit 1
  fi
}

list_segments() {
  find /dev/shm -maxdepth 1 -name 'prefork_*' -printf '%f\n' | LC_ALL=C sort
}

# No scoreboard segment of the run of bench/NAME is left in /dev/shm: its
# servers' are named prefork_NAME_<its pid>_<TAIL>, TAIL a regex ([0-9]+
# unless given). Those that were not there before the run are reported (and
# removed: they are the run's own); others' segments, such as those of tests
# running meanwhile, are not looked at.
expect_no_segments() {
  local name=$1 tail=${2:-[0-9]+} left segment
  left=$(list_segments | LC_ALL=C comm -13 "$out/shm.before" - |
    grep -E "^prefork_${name}_${bench_pid}_${tail}\$" || true)
  if [[ -n $left ]]; then
    echo "FAIL: bench/$name left scoreboard segments in /dev/shm: ${left//$'\n'/ }" >&2
    while read -r segment; do rm -f "/dev/shm/$segment"; done <<<"$left"
    exit 1
  fi
}
