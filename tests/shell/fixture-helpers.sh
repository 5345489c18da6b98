# Helpers shared by the test Slurm fixtures (tests/slurm/local-slurm.sh, one node;
# tests/cluster/cluster.sh, nodes in network namespaces). Sourced, not run. The sourcing script
# defines log and die, and sets PACKAGES (Debian packages it needs), PIDFILE (lines "name pid"
# of the daemons it started) and LEASES (a directory with one file per user of the fixture,
# named by the user's PID, or "manual").

# Install the missing PACKAGES (root only) without letting their scripts start daemons.
install_packages() {
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [ "$(id -u)" -eq 0 ] || die "packages missing (${missing[*]}) and not root to install them"
  log "installing ${missing[*]}"
  local policy_added=0 rc=0
  # No init system: package scripts must not start daemons we have not recorded.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  { apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null; } || rc=$?
  [ "$policy_added" -eq 0 ] || rm -f /usr/sbin/policy-rc.d
  [ "$rc" -eq 0 ] || die "apt-get install failed (rc=$rc)"
}

# Is process PID alive (not a zombie) and named NAME?
pid_alive() { # pid name
  [ -n "${1:-}" ] && [ -r "/proc/$1/comm" ] || return 1
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
  local state; state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# The PID last recorded for daemon NAME in PIDFILE, or nothing.
recorded() { [ -f "$PIDFILE" ] && awk -v n="$1" '$1 == n {print $2}' "$PIDFILE" | tail -n 1 || true; }

# Wait up to 10 s for a daemon's PID file; print the PID.
wait_pidfile() { # file -> prints pid
  local i
  for i in $(seq 1 100); do
    [ -s "$1" ] && { tr -d ' \n' < "$1"; return 0; }
    sleep 0.1
  done
  return 1
}

# How many users hold a lease (leases of dead processes are removed).
live_leases() {
  local f pid n=0
  [ -d "$LEASES" ] || { echo 0; return; }
  for f in "$LEASES"/*; do
    [ -e "$f" ] || continue
    pid=${f##*/}
    if [ "$pid" = manual ] || [ -d "/proc/$pid" ]; then n=$((n + 1)); else rm -f "$f"; fi
  done
  echo "$n"
}
