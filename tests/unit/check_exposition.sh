#!/usr/bin/env bash
# The exposition's sample files (three of each format, written by the unit
# test) through promtool, the strict OpenMetrics parser and json: see
# tests/support/check_metrics.sh.
#   check_exposition.sh UNIT_EXPOSITION_BINARY
# Exit 77 (skipped) only when promtool or the Python module is missing.
set -u

binary=${1:?usage: check_exposition.sh UNIT_EXPOSITION_BINARY}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

if ! "$binary" --run_test=write_samples -- "$dir"; then
  echo "FAIL: $binary could not write the samples"
  exit 1
fi

files=("$dir"/*.prom "$dir"/*.om "$dir"/*.json)
if [ "${#files[@]}" -ne 9 ]; then
  echo "FAIL: expected 9 sample files, found ${#files[@]}"
  exit 1
fi
exec bash "$(dirname "$0")/../support/check_metrics.sh" "${files[@]}"
