#!/usr/bin/env bash
# Feeds metrics files to the parsers Prometheus users actually run: *.prom
# (Prometheus text 0.0.4) to `promtool check metrics`, which must say
# nothing at all (its lint findings also count as failures); *.om
# (OpenMetrics) to python3-prometheus-client's strict parser; *.json
# (the scoreboard document) to Python's json module, NaN and Infinity refused.
#   check_metrics.sh FILE...
# Prints how many files it checked; exit 77 (skipped) only when promtool or
# the Python module is missing.
set -u

# Debian's module lives in the system interpreter; a pyenv python3 on PATH
# may not have it.
python=/usr/bin/python3

if ! command -v promtool >/dev/null 2>&1; then
  echo "SKIP: promtool is not installed (Debian: apt-get install prometheus)"
  exit 77
fi
if ! "$python" -c 'import prometheus_client.openmetrics.parser' >/dev/null 2>&1; then
  echo "SKIP: $python has no prometheus_client (Debian: apt-get install python3-prometheus-client)"
  exit 77
fi

failed=0
checked=0
for file in "$@"; do
  [[ $file == *.prom ]] || continue
  output=$(promtool check metrics <"$file" 2>&1)
  status=$?
  checked=$((checked + 1))
  if [ "$status" -ne 0 ] || [ -n "$output" ]; then
    echo "FAIL: promtool check metrics $(basename "$file") (exit $status):"
    echo "$output"
    failed=1
  fi
done

for file in "$@"; do
  [[ $file == *.om ]] || continue
  checked=$((checked + 1))
  if ! "$python" - "$file" <<'EOF'; then
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families

with open(sys.argv[1], encoding="utf-8") as f:  # also proves it is UTF-8
    text = f.read()
families = list(text_string_to_metric_families(text))
if not families:
    sys.exit("no metric families")
for family in families:
    if not family.documentation:
        sys.exit(f"{family.name}: no HELP")
EOF
    echo "FAIL: the OpenMetrics parser refused $(basename "$file")"
    failed=1
  fi
done

for file in "$@"; do
  [[ $file == *.json ]] || continue
  checked=$((checked + 1))
  if ! "$python" - "$file" <<'EOF'; then
import json, sys

def refuse(constant):
    raise ValueError(f"not JSON: {constant}")

with open(sys.argv[1], encoding="utf-8") as f:
    doc = json.load(f, parse_constant=refuse)
if not isinstance(doc, dict) or "workers" not in doc:
    sys.exit("not a scoreboard document")
EOF
    echo "FAIL: $(basename "$file") is not valid JSON"
    failed=1
  fi
done

[ "$failed" -eq 0 ] && echo "promtool, the OpenMetrics parser and json accepted all $checked files"
exit "$failed"
