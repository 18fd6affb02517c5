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

# bench/NAME --quick ARGS... into $out; on failure, its stderr and exit 1.
run_quick() {
  local name=$1 status=0
  shift
  "$root/bench/$name" --quick --out "$out" "$@" >"$out/stdout" 2>"$out/stderr" || status=$?
  if [[ $status -ne 0 ]]; then
    echo "FAIL: bench/$name --quick exited $status; its stderr:" >&2
    tail -30 "$out/stderr" >&2
    exit 1
  fi
}

# The run's scoreboards are gone: NAME is the benchmark's segment prefix
# (prefork_NAME_<its pid>_<n>), as its report in FILE names them.
expect_no_segments() {
  local name=$1 file=$2 prefix
  prefix=$(grep -o "prefork_${name}_[0-9]*_" "$file" | head -1 || true)
  if [[ -n $prefix ]] && ls /dev/shm/"$prefix"* >/dev/null 2>&1; then
    echo "FAIL: leftover scoreboard segments: $(ls /dev/shm/"$prefix"*)" >&2
    exit 1
  fi
}
