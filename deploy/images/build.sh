#!/usr/bin/env bash
# make images: build the platform and runner images with docker or podman.
# Without a container engine it says so and exits 0 (nothing to build with).
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=${TAG:-dev}
engine=""
for e in docker podman; do
  if command -v "$e" >/dev/null 2>&1 && "$e" info >/dev/null 2>&1; then engine=$e; break; fi
done
if [ -z "$engine" ]; then
  echo "make images: skipped: no container engine (docker or podman) is running here;"
  echo "  the recipes are deploy/images/platform.Dockerfile and deploy/images/runner.Dockerfile"
  exit 0
fi
"$engine" build -f deploy/images/platform.Dockerfile -t "gofastapi/platform:$TAG" .
"$engine" build -f deploy/images/runner.Dockerfile -t "gofastapi/runner:$TAG" .
echo "built gofastapi/platform:$TAG and gofastapi/runner:$TAG with $engine"
