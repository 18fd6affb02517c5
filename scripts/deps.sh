#!/usr/bin/env bash
# Installs the Debian 12 packages prefork needs to build and test, only those
# missing. Safe to run again: with everything present it changes nothing and
# does not touch the network.
#
#   g++                 the compiler; also brings libasan/libubsan for the
#                       sanitizer build (via libgcc-12-dev: libasan8, libubsan1)
#   cmake, ninja-build  the build; Ninja rather than make because it runs
#                       jobs in parallel by default and a no-op rebuild is
#                       instant (run.sh and test.sh pick it for new build trees)
#   libboost1.81-dev    Boost.Process v2, Interprocess, Asio (header-only here);
#                       Debian's default libboost-dev is 1.74, without Process v2
#   libboost-test1.81-dev  Boost.Test, for the test executables
#   libboost-program-options1.81-dev  Boost.Program_options: every program's flags
#   libtomlplusplus-dev toml++ 3.3, the --config file (TOML): Debian's packaged
#                       C++ TOML parser, complete TOML 1.0, with the line and
#                       column of every key, value and syntax error (for
#                       "prefork.toml:7: unknown key 'wokers'"); used
#                       header-only in framework/src/config_file.cpp, so the
#                       installed prefork package does not depend on it
#   python3             the example clients and the tests' client scripts
#   clang-format        the formatting check in test.sh
#   gnuplot-nox         the benchmark plots (bench/models, bench/spawn), which
#                       the test suite's benchmark smoke tests check too
#   procps              ps and pgrep, which the teaching guide (docs/guide/)
#                       has the student run, and its doc test with it; minimal
#                       images (containers) leave it out. taskset and unshare
#                       come from util-linux, which Debian always has
# With --test, also what only the test suite uses:
#   prometheus          for promtool, which lints the /metrics output
#                       (`promtool check metrics`); nothing of it is started
#   python3-prometheus-client  its strict OpenMetrics parser checks the
#                       OpenMetrics output (promtool 2.42 reads only the older
#                       text format)
#   clang               clang 14 with libFuzzer (libclang-rt-14-dev): the
#                       fuzz targets of tests/fuzz (scripts/fuzz.sh); GCC has
#                       no coverage-guided fuzzer
set -euo pipefail

packages=(
  g++
  cmake
  ninja-build
  libboost1.81-dev
  libboost-test1.81-dev
  libboost-program-options1.81-dev
  libtomlplusplus-dev
  python3
  clang-format
  gnuplot-nox
  procps
)
if [[ ${1:-} == --test ]]; then
  packages+=(prometheus python3-prometheus-client clang libclang-rt-14-dev)
fi

if ! command -v dpkg-query >/dev/null; then
  echo "deps.sh: not a Debian system; make sure these (or their equivalents) are installed:" >&2
  echo "  ${packages[*]}" >&2
  exit 0
fi

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  if [[ $status != "install ok installed" ]]; then
    missing+=("$package")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps.sh: all packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "deps.sh: missing packages: ${missing[*]}" >&2
  echo "deps.sh: as root, run:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The tests want promtool, not a Prometheus server listening on :9090: no
# service may start during the install (policy-rc.d, exit 101 = "not now"),
# and the prometheus service is left disabled.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  own_policy=true
fi
status=0
apt-get update && apt-get install -y --no-install-recommends "${missing[@]}" || status=$?
if $own_policy; then rm -f "$policy"; fi
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
  systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
exit "$status"
