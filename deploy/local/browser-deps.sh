#!/usr/bin/env bash
# Installs Debian's Chromium for the web editor's browser test (make
# test-web). As root on Debian/Ubuntu it installs the package with apt-get;
# otherwise it prints the command to run and fails.
set -euo pipefail

chromium=/usr/bin/chromium

if [ -x "$chromium" ]; then
  exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "browser-deps: installing chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
  [ -x "$chromium" ] || { echo "browser-deps: $chromium still missing after apt-get install" >&2; exit 1; }
  exit 0
fi

echo "browser-deps: Chromium is missing. Run:" >&2
echo "  sudo apt-get install -y chromium fonts-liberation" >&2
exit 1
