#!/usr/bin/env bash
# Makes the header-only dependencies (nlohmann-json, CLI11) available without root: uses the
# system's when installed, else downloads the Debian packages and unpacks them into .deps/root
# (ignored by git). The GPU machine has no package access: this folder travels there with
# `carry: [".deps"]` and CMake finds it through LOSA_DEPS_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -f /usr/include/nlohmann/json.hpp ] || [ -f .deps/root/usr/include/nlohmann/json.hpp ] || need+=(nlohmann-json3-dev)
[ -f /usr/include/CLI/CLI.hpp ] || [ -f .deps/root/usr/include/CLI/CLI.hpp ] || need+=(libcli11-dev)
if [ "${1:-}" = "--for-device" ]; then  # always unpack, for carrying to a machine without them
  need=(nlohmann-json3-dev libcli11-dev)
fi
[ ${#need[@]} -eq 0 ] && exit 0
mkdir -p .deps/debs .deps/root
(cd .deps/debs && apt-get download "${need[@]}" >/dev/null 2>&1) || {
  apt-get update -qq >/dev/null 2>&1 || true
  (cd .deps/debs && apt-get download "${need[@]}")
}
for deb in .deps/debs/*.deb; do dpkg -x "$deb" .deps/root; done
echo "fetch_deps: unpacked ${need[*]} into .deps/root"
