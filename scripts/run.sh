#!/usr/bin/env bash
# Builds prefork in Release and runs the upper-case example server.
#   bash scripts/run.sh [server flags...]
# With no flags the server's defaults apply: tcp+udp 127.0.0.1:8080, framed
# 127.0.0.1:8081, stats name upper_server. Try `bash scripts/run.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

# A new build tree uses Ninja; an existing one keeps the generator it has.
generator=()
[[ -f build/CMakeCache.txt ]] || generator=(-G Ninja)
cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
cmake --build build --parallel "$(nproc)"

exec build/bin/upper_server "$@"
