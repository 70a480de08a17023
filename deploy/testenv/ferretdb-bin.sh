#!/usr/bin/env bash
# Build (once, cached) the FerretDB binary that the MongoDB-users tests run: the
# version go.mod requires, from source through the Go module proxy. Its command
# line, unlike the embedded Go API, can turn on real SCRAM users
# (--test-enable-new-auth), which stand in for an external MongoDB with auth.
#   deploy/testenv/ferretdb-bin.sh      -> builds if missing, prints the binary's path
#   deploy/testenv/ferretdb-bin.sh -n   -> prints the path only, builds nothing
# The Go test helper (controlplane/mongousers/mongotest) starts and stops it.
# Cache: $XDG_CACHE_HOME/gofastapi/ferretdb.
set -euo pipefail
GO=${GO:-go}
root=$(cd "$(dirname "$0")/../.." && pwd)
FERRETDB_VERSION=${FERRETDB_VERSION:-$(awk '$1 == "github.com/FerretDB/FerretDB" { print $2 }' "$root/go.mod")}
[ -n "$FERRETDB_VERSION" ] || { echo "ferretdb-bin.sh: no github.com/FerretDB/FerretDB in go.mod; set FERRETDB_VERSION" >&2; exit 1; }
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/gofastapi/ferretdb
BIN=$CACHE/bin/ferretdb-$FERRETDB_VERSION-$($GO env GOOS)-$($GO env GOARCH)

if [ "${1:-}" = -n ] || [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
src=$(mktemp -d); trap 'rm -rf "$src"' EXIT
mkdir -p "$(dirname "$BIN")"
echo "building ferretdb $FERRETDB_VERSION from source (once; a few minutes)" >&2
# The module's own source, with the version file its build task would generate
# (build/version/version.txt; a binary of FerretDB's main module refuses to start without it).
dir=$(cd "$src" && $GO mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
cp -R "$dir" "$src/ferretdb" && chmod -R u+w "$src/ferretdb"
echo "$FERRETDB_VERSION" > "$src/ferretdb/build/version/version.txt"
( cd "$src/ferretdb" && $GO build -trimpath -ldflags "-s -w" -o "$BIN.tmp" ./cmd/ferretdb >&2 )
# rename last, so an interrupted build is never taken for a finished one
mv "$BIN.tmp" "$BIN"
echo "$BIN"
