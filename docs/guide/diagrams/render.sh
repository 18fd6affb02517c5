#!/usr/bin/env bash
# Renders each diagram's Graphviz source (NAME.dot) to NAME.svg and stamps the
# SVG with the source's sha256, so that the doc test can tell a stale picture
# (tests/doc/guide_check.py --links). Needs graphviz: apt-get install graphviz.
set -euo pipefail
cd "$(dirname "$0")"
command -v dot >/dev/null || { echo "render.sh: dot is missing: apt-get install graphviz" >&2; exit 1; }
for src in *.dot; do
  svg=${src%.dot}.svg
  digest=$(sha256sum "$src" | cut -d' ' -f1)
  { dot -Tsvg "$src"; echo "<!-- rendered from $src, source sha256 $digest -->"; } >"$svg.tmp"
  mv "$svg.tmp" "$svg"
  echo "wrote $svg"
done
