#!/usr/bin/env bash
# The libFuzzer targets of tests/fuzz, built with clang in build-fuzz/ and run
# each over its committed corpus (tests/fuzz/corpus/NAME, read only: new
# inputs go to a scratch directory) for a few seconds, or longer:
#   scripts/fuzz.sh              every target, 10 s each
#   scripts/fuzz.sh 600 codecs   one target, 10 minutes (a developer's run);
#                                then `--merge` adds what it found to the corpus
#   scripts/fuzz.sh --seeded     what scripts/test.sh runs: every target for a
#                                fixed count of inputs from seed 1 (~5 s each
#                                here), so a run's outcome is the commit's,
#                                never chance's, and a failure reproduces
# A crash, a leak, an abort or a sanitizer report fails the run and leaves
# the input in build-fuzz/findings/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
merge=0
seeded=0
targets=()
for arg in "$@"; do
  case $arg in
    --merge) merge=1 ;;
    --seeded) seeded=1 ;;
    [0-9]*) seconds=$arg ;;
    *) targets+=("$arg") ;;
  esac
done
# Inputs per target for --seeded: about 5 s each on a 2-core CI machine
# (the targets' speeds differ a hundredfold).
declare -A seeded_runs=([codecs]=100000 [command_line]=4000 [config_file]=10000
  [datagram]=10000 [metrics_request]=400000 [scoreboard_reader]=800)
[[ ${#targets[@]} -gt 0 ]] || targets=(codecs command_line config_file datagram metrics_request scoreboard_reader)

if [[ ! -f build-fuzz/CMakeCache.txt ]]; then
  # -O1 and line tables only: the build is most of a short run's time;
  # NDEBUG as shipped (toml++'s debug asserts are not the product).
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=None \
    -DCMAKE_CXX_FLAGS="-O1 -gline-tables-only -DNDEBUG" -DPREFORK_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
fi
cmake --build build-fuzz --parallel "$(nproc)" --target "${targets[@]/#/fuzz_}"

mkdir -p build-fuzz/findings
status=0
for name in "${targets[@]}"; do
  corpus=tests/fuzz/corpus/$name
  scratch=$(mktemp -d)
  mkdir -p "$corpus"
  if [[ $seeded -eq 1 ]]; then
    bound=(-seed=1 -runs="${seeded_runs[$name]}") how_long="${seeded_runs[$name]} inputs from seed 1"
  else
    bound=(-max_total_time="$seconds") how_long="$seconds s"
  fi
  echo "fuzz_$name: $how_long over $(find "$corpus" -type f | wc -l) corpus inputs"
  dict=()
  [[ -f tests/fuzz/$name.dict ]] && dict=(-dict=tests/fuzz/"$name".dict)
  if ! build-fuzz/fuzz/fuzz_"$name" "${bound[@]}" "${dict[@]}" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix=build-fuzz/findings/"$name"- -print_final_stats=0 -close_fd_mask=3 \
      "$scratch" "$corpus" >build-fuzz/findings/"$name".log 2>&1; then
    echo "fuzz_$name: FAILED (input and log in build-fuzz/findings/)"
    tail -30 build-fuzz/findings/"$name".log
    status=1
  else
    tail -1 build-fuzz/findings/"$name".log
  fi
  if [[ $merge -eq 1 ]]; then
    build-fuzz/fuzz/fuzz_"$name" -merge=1 "$corpus" "$scratch" >/dev/null 2>&1
  fi
  rm -rf "$scratch"
done
exit "$status"
