#!/bin/sh
# Installs what `npm run bench` (test/bench/bench.ts) needs besides meshd's own set-up
# (scripts/setup.sh): the load generators and the peers it compares meshd with, all from
# Debian 12. Idempotent and quick when everything is in place. Debian starts the services of
# some of these packages on install; the bench starts its own copies inside lab namespaces,
# so the system services are disabled again.
set -eu

say() { printf 'bench-setup: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  say "the bench builds network namespaces and installs packages; run as root"
  exit 1
fi

# nginx's stream module (with stream_ssl) is the separate libnginx-mod-stream package in
# Debian 12; nginx-light and nginx-core do not pull it in.
packages="iperf3 wrk stunnel4 haproxy nginx libnginx-mod-stream tcpdump openssl iproute2 curl procps"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  say "installing OS packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # iperf3 asks whether to run a system daemon; no.
  echo 'iperf3 iperf3/start_daemon boolean false' | debconf-set-selections
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  if command -v systemctl >/dev/null 2>&1; then
    for unit in nginx haproxy stunnel4 iperf3; do systemctl disable --now "$unit" >/dev/null 2>&1 || true; done
  fi
fi
