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
# Debian 12; nginx-light and nginx-core do not pull it in. iperf3 asks whether to run a
# system daemon on install; no.
echo 'iperf3 iperf3/start_daemon boolean false' | debconf-set-selections
. "$(dirname -- "$0")/apt-packages.sh"
ensure_packages "nginx haproxy stunnel4 iperf3" iperf3 wrk stunnel4 haproxy nginx \
  libnginx-mod-stream tcpdump openssl iproute2 curl procps
# caddy (Debian 12: 2.6) is one of the L7 bench's peers (test/bench/l7.ts) only; the bench
# skips it with a message when it cannot be had, so a failed install does not stop here.
if ! ensure_packages caddy caddy; then
  say "caddy could not be installed: npm run bench:l7 will skip it"
fi
