#!/usr/bin/env bash
# Installs what the embedded default needs at run time and in tests: the
# runners' Python packages (from Debian) and redis-server. As root on
# Debian/Ubuntu it installs them with apt-get; otherwise it prints the exact
# command to run and fails.
set -euo pipefail

apt_pkgs=(python3-fastapi python3-uvicorn python3-httptools python3-pymongo python3-jinja2 python3-jose
  python3-httpx python3-multipart python3-pip redis-server)
py=/usr/bin/python3
modules="fastapi, uvicorn, httptools, starlette, pydantic, pymongo, jinja2, jose, httpx, multipart"

missing() {
  [ -x "$py" ] || return 0
  "$py" -c "import $modules" 2>/dev/null || return 0
  # pip installs the packages apps declare in requirements.txt.
  "$py" -m pip --version >/dev/null 2>&1 || return 0
  command -v redis-server >/dev/null || return 0
  return 1
}

if ! missing; then
  exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "deps: installing ${apt_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
  missing && { echo "deps: still missing after apt-get install" >&2; exit 1; }
  exit 0
fi

echo "deps: runtime packages are missing. Run:" >&2
if command -v apt-get >/dev/null; then
  echo "  sudo apt-get install -y ${apt_pkgs[*]}" >&2
else
  echo "  python3 -m venv .venv && .venv/bin/pip install fastapi uvicorn httptools pymongo jinja2 python-jose httpx python-multipart" >&2
  echo "  and install redis-server with your package manager; then run gofastapi dev --python .venv/bin/python3" >&2
fi
exit 1
