# Sourced by scripts/setup.sh and scripts/bench-setup.sh (which define say()).
# ensure_packages "UNITS" PACKAGE...: installs the Debian packages that are missing, then
# disables the system services UNITS that some of them start on install (meshd's tests and
# the bench start their own copies inside lab namespaces or on free loopback ports).
ensure_packages() {
  units=$1
  shift
  missing=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  [ -n "$missing" ] || return 0
  say "installing OS packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  if command -v systemctl >/dev/null 2>&1; then
    for unit in $units; do systemctl disable --now "$unit" >/dev/null 2>&1 || true; done
  fi
}
