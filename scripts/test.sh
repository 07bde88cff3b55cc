#!/bin/sh
# The test suite: unit tests, then the netns-lab e2e tests one file at a time, then a check that
# the suite left the host as it found it (no lab namespaces, host iptables unchanged), which
# runs whether or not the earlier tiers passed.
set -u
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$root"
PATH="$root/node_modules/.bin:$PATH"

snapshot=$(mktemp /tmp/meshd-host-before.XXXXXX)
trap 'rm -f "$snapshot"' EXIT
node dist/test/support/host-snapshot.js >"$snapshot"

status=0
node --test --test-concurrency=2 --test-timeout=120000 'dist/test/unit/**/*.test.js' || status=1
node --test --test-concurrency=1 --test-timeout=300000 'dist/test/e2e/**/*.test.js' || status=1
MESHD_HOST_SNAPSHOT="$snapshot" node --test dist/test/host-clean.test.js || status=1
exit $status
