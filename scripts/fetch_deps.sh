#!/usr/bin/env bash
# Makes the build dependencies that Debian packages (nlohmann-json, CLI11, stb: header-only; PCRE2,
# utf8proc: headers and static archives for the tokenizer) available without root: uses the
# system's when installed, else downloads the Debian packages and unpacks them into .deps/root
# (ignored by git). The GPU machine has no package access: this folder travels there with
# `carry: [".deps"]` and CMake finds it through LOSA_DEPS_DIR.
#   --tests       also GoogleTest (libgtest-dev: headers, static libraries, CMake package), which
#                 only the tests need (scripts/test.sh)
#   --for-device  unpack the build dependencies (not GoogleTest) even where the system has
#                 them, to carry them
set -euo pipefail
cd "$(dirname "$0")/.."
all=(nlohmann-json3-dev libcli11-dev libpcre2-dev libutf8proc-dev libstb-dev)
if [ "${1:-}" = "--tests" ]; then all+=(libgtest-dev); fi
header_of() {
  case "$1" in
    nlohmann-json3-dev) echo nlohmann/json.hpp ;;
    libcli11-dev) echo CLI/CLI.hpp ;;
    libpcre2-dev) echo pcre2.h ;;
    libutf8proc-dev) echo utf8proc.h ;;
    libstb-dev) echo stb/stb_image_write.h ;;
    libgtest-dev) echo gtest/gtest.h ;;
  esac
}
need=()
for pkg in "${all[@]}"; do
  header=$(header_of "$pkg")
  [ -f "/usr/include/$header" ] || [ -f ".deps/root/usr/include/$header" ] || need+=("$pkg")
done
if [ "${1:-}" = "--for-device" ]; then  # always unpack, for carrying to a machine without them
  need=("${all[@]}")
fi
[ ${#need[@]} -eq 0 ] && exit 0
mkdir -p .deps/debs .deps/root
(cd .deps/debs && apt-get download "${need[@]}" >/dev/null 2>&1) || {
  apt-get update -qq >/dev/null 2>&1 || true
  (cd .deps/debs && apt-get download "${need[@]}")
}
for deb in .deps/debs/*.deb; do dpkg -x "$deb" .deps/root; done
echo "fetch_deps: unpacked ${need[*]} into .deps/root"
