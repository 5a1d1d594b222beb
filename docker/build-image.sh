#!/usr/bin/env bash
# Builds the stophub image with no registry: a statically linked binary (glibc, crt-static)
# copied into an image FROM scratch. Usage: docker/build-image.sh [TAG]   (default stophub:dev)
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-stophub:dev}"
target="x86_64-unknown-linux-gnu"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target "$target"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "target/$target/release/stophub" "$context/stophub"
strip "$context/stophub" 2>/dev/null || true
cp docker/Dockerfile "$context/Dockerfile"
docker build -q -t "$tag" "$context"
echo "built $tag"
