#!/usr/bin/env bash
# Builds prefork in Release and runs the upper-case example server.
#   bash scripts/run.sh [server flags...]
# With no flags the server's defaults apply: tcp+udp 127.0.0.1:8080, framed
# 127.0.0.1:8081, stats name upper_server. Try `bash scripts/run.sh --help`.
# Run as root, it adds `--user nobody` unless --user or --allow-root is given.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

# A new build tree uses Ninja; an existing one keeps the generator it has.
generator=()
[[ -f build/CMakeCache.txt ]] || generator=(-G Ninja)
cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
cmake --build build --parallel "$(nproc)"

# As root (a fresh machine), the workers run as `nobody`: a prefork master
# refuses to run its workers as root unless told so (--user, --allow-root).
# The master keeps root, which it needs to bind; see README, "Privileges".
args=("$@")
if [[ $EUID -eq 0 ]] && id nobody >/dev/null 2>&1; then
  case " $* " in
    *" --user "* | *" --user="* | *" --allow-root "*) ;;
    *) args=(--user nobody "${args[@]}") ;;
  esac
fi
exec build/bin/upper_server "${args[@]}"
