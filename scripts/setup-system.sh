#!/usr/bin/env bash
# Installs the Debian tools that Vigil's tests and benchmarks call as programs:
#   promtool (package prometheus)   - `promtool check rules` on deploy/prometheus/vigil-alerts.yaml
#   h2load   (package nghttp2-client) - HTTP/2 load for bench/
#   chromium (package chromium)       - the console's browser tests (playwright-core drives it)
#   valgrind (package valgrind)       - callgrind instruction counts for bench/instructions.bench.ts
# Idempotent and quick when everything is present: apt is only touched when a binary is missing.
# Runs as root (CI does); elsewhere it uses sudo when it is available.
set -euo pipefail

# binary:debian-package pairs
REQUIRED=(
  "promtool:prometheus"
  "h2load:nghttp2-client"
  "chromium:chromium"
  "valgrind:valgrind"
)

missing_packages=()
for pair in "${REQUIRED[@]}"; do
  binary="${pair%%:*}"
  package="${pair#*:}"
  if command -v "$binary" >/dev/null 2>&1; then
    echo "setup-system: $binary present ($(command -v "$binary"))"
  else
    echo "setup-system: $binary missing; will install Debian package $package"
    missing_packages+=("$package")
  fi
done

if [ "${#missing_packages[@]}" -eq 0 ]; then
  echo "setup-system: nothing to install"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: apt-get not found; install ${missing_packages[*]} by hand" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "setup-system: not root and no sudo; install ${missing_packages[*]} by hand" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# The prometheus package ships a server we never run: keep its maintainer scripts from
# starting it (policy-rc.d exit 101 = "action forbidden"), and restore any existing policy after.
policy=/usr/sbin/policy-rc.d
restore_policy=""
if [ -e "$policy" ]; then
  restore_policy="$(mktemp)"
  $SUDO cp -p "$policy" "$restore_policy"
fi
cleanup() {
  if [ -n "$restore_policy" ]; then
    $SUDO mv -f "$restore_policy" "$policy"
  else
    $SUDO rm -f "$policy"
  fi
}
trap cleanup EXIT
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
$SUDO chmod 755 "$policy"

echo "setup-system: apt-get update"
$SUDO apt-get update -qq
echo "setup-system: apt-get install -y --no-install-recommends ${missing_packages[*]}"
$SUDO apt-get install -y -qq --no-install-recommends "${missing_packages[@]}"

for pair in "${REQUIRED[@]}"; do
  binary="${pair%%:*}"
  if ! command -v "$binary" >/dev/null 2>&1; then
    echo "setup-system: $binary still missing after install" >&2
    exit 1
  fi
  echo "setup-system: $binary installed ($(command -v "$binary"))"
done
