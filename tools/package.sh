#!/usr/bin/env bash
# package.sh - builds the .deb (firmware/CMakeLists.txt's CPack settings) in build-pkg/:
# a /usr-prefixed build without tests, so the config lands in /etc and the unit's
# ExecStart in /usr/sbin. Extra arguments go to cmake, e.g. a board's toolchain file:
#   tools/package.sh --toolchain boards/rpi4-aarch64/toolchain.cmake -DCOVERD_SYSROOT=...
# Environment: BUILD_DIR (default build-pkg), JOBS.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dir=${BUILD_DIR:-build-pkg}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

cmake -S . -B "$dir" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCOVERD_TESTS=OFF "$@" >/dev/null
cmake --build "$dir" -j "$jobs" >/dev/null
(cd "$dir" && cpack -G DEB >/dev/null)
ls -1 "$dir"/coverd_*.deb
