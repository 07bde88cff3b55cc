#!/bin/sh
# Brings a fresh Debian 12 machine (as root) to where meshd builds, tests and runs its lab:
# the OS packages, the npm dependencies (including the pinned Node 24 runtime), the native
# addon and the TypeScript build. Idempotent and quick when everything is already in place.
set -eu
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$root"

say() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  say "meshd's lab and tests need root (network namespaces, iptables); run as root"
  exit 1
fi

# Packages the lab, the tests and the addon build use.
. "$root/scripts/apt-packages.sh"
ensure_packages "etcd redis-server" iproute2 iptables containernetworking-plugins curl python3 \
  make g++ procps openssl etcd-server tcpdump util-linux nftables redis-server redis-tools systemd

# npm ci when node_modules is missing or older than the lockfile.
if [ ! -x node_modules/.bin/node ] || [ ! -d "node_modules/node/node_modules/node-linux-$(uname -m | sed "s/x86_64/x64/;s/aarch64/arm64/")/include" ] \
  || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci; includes Node 24 and the native addon build)"
  npm ci --no-audit --no-fund --loglevel=error
fi

PATH="$root/node_modules/.bin:$PATH"
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" != 24 ]; then
  say "node_modules/.bin/node is Node $major, expected 24; remove node_modules and run again"
  exit 1
fi
node scripts/build-native.mjs
tsc -p tsconfig.json
