#!/usr/bin/env bash
# Installs what `make bench` needs besides the runtime: wrk (load generator),
# nginx (the reverse-proxy baseline) and socat (a byte relay, the floor of
# any proxy's hop), from Debian's packages.
set -euo pipefail
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v socat >/dev/null || need+=(socat)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "bench-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  exit 0
fi
echo "bench-deps: missing ${need[*]}. Run: sudo apt-get install -y ${need[*]}" >&2
exit 1
