#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run):
#   1. build/       Release (as run.sh, so neither rebuilds the other), every CTest test (unit, integration, consumer)
#   2. build-asan/  Debug with AddressSanitizer + UBSan (PREFORK_SANITIZE=ON),
#                   every test but the installed-package one (-LE consumer)
#   3. clang-format --dry-run -Werror over the project's C++ files
# Each step runs even when an earlier one failed, so one run reports every
# failure; the exit status is non-zero if any step failed.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
started=$SECONDS
passed=()
failed=()

# step NAME COMMAND...: runs one step and records its outcome.
step() {
  local name=$1 begin=$SECONDS status=0
  shift
  echo
  echo "==== $name"
  "$@" || status=$?
  if [[ $status -eq 0 ]]; then
    passed+=("$name")
    echo "==== $name: ok ($((SECONDS - begin)) s)"
  else
    failed+=("$name")
    echo "==== $name: FAILED with status $status ($((SECONDS - begin)) s)"
  fi
  return "$status"
}

# configure DIR ARGS...: a new build tree uses Ninja; an existing one keeps
# the generator it was made with (CMake refuses to switch).
configure() {
  local dir=$1
  shift
  if [[ -f $dir/CMakeCache.txt ]]; then
    cmake -S . -B "$dir" "$@"
  else
    cmake -S . -B "$dir" -G Ninja "$@"
  fi
}

# The project's own C++ sources, not build trees.
format_check() {
  find . \( -path './build*' -o -path ./.git \) -prune -o -type f \
    \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.cc' \) -print0 |
    sort -z | xargs -0 clang-format --dry-run -Werror
}

if ! bash scripts/deps.sh --test; then
  echo "test.sh: FAIL: missing build dependencies (see scripts/deps.sh)"
  exit 1
fi

# Tests use port 0 and per-pid names for shared memory, so two run at once.
if step "configure build/" configure build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON &&
  step "build build/" cmake --build build --parallel "$jobs"; then
  step "ctest build/" ctest --test-dir build --output-on-failure --no-tests=error -j2 || true
fi

if step "configure build-asan/" configure build-asan -DCMAKE_BUILD_TYPE=Debug \
  -DPREFORK_SANITIZE=ON -DBUILD_TESTING=ON &&
  step "build build-asan/" cmake --build build-asan --parallel "$jobs"; then
  step "ctest build-asan/" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure --no-tests=error -j2 -LE consumer || true
fi

step "clang-format" format_check || true

elapsed=$((SECONDS - started))
echo
if [[ ${#failed[@]} -eq 0 ]]; then
  echo "test.sh: PASS: ${#passed[@]} steps in $((elapsed / 60))m$((elapsed % 60))s"
else
  failed_list=$(printf '%s, ' "${failed[@]}")
  echo "test.sh: FAIL: ${failed_list%, } (${#passed[@]} steps passed) in $((elapsed / 60))m$((elapsed % 60))s"
  exit 1
fi
