#!/usr/bin/env bash
# A real multi-node Slurm cluster on this one machine, for the test suite and for trying a
# multi-node deployment: every node is its own network namespace (its own address on a bridge
# private to this cluster) plus its own UTS namespace (its own host name) and mount namespace,
# running one real slurmd; one real slurmctld (host name `ctl`) manages them; one munged of our
# own signs their messages.
#
#   cluster.sh start [--nodes N] [--lease PID]  start N nodes (default 2, 1..8) unless ours are
#                                  already up with at least N nodes; wait until every node is
#                                  idle. With --lease, PID (a pytest session) is recorded as a
#                                  user; without, a "manual" lease is held until a plain stop.
#   cluster.sh stop [--lease PID]  with --lease: drop that lease and stop only when no live lease
#                                  is left; without: drop every lease and stop now. Leaves no
#                                  daemon, namespace, bridge, veth or mount behind.
#   cluster.sh status              daemons, nodes, addresses, leases, sinfo (exit 0 = running).
#   cluster.sh env                 shell lines for a client: eval "$(cluster.sh env)".
#   cluster.sh exec NODE CMD...    run CMD inside NODE (its network, host name and /etc/hosts);
#                                  NODE `ctl`: beside slurmctld, where srun works from (an srun
#                                  started on the host itself binds the host name's address,
#                                  127.0.0.1, which the nodes cannot reach). sbatch, squeue,
#                                  scontrol, scancel and sinfo work from the host.
#
# Nothing machine-wide is edited: the Slurm configuration is $RUN/etc/slurm.conf (clients need
# SLURM_CONF, see `env`), munged uses its own key and socket under $RUN/munge, and each daemon
# sees the cluster's hosts file through a bind mount inside its own mount namespace only.
# The only machine-wide objects are the kernel's network devices and namespaces, named with the
# prefix `bdc` (BEDROCK_CLUSTER_PREFIX), and /run/netns (created by `ip netns` if missing,
# removed again by the stop that leaves it empty).
#
# Settings: BEDROCK_CLUSTER_RUN (default /tmp/bedrock-deploy-cluster), BEDROCK_CLUSTER_SUBNET
# (10.77.0), BEDROCK_CLUSTER_PREFIX (bdc), BEDROCK_CLUSTER_SLURMCTLD_PORT / _SLURMD_PORT
# (6827 / 6828): a second cluster beside the first needs all five changed.
# Layout (N nodes; SUBNET defaults to 10.77.0):
#   bridge bdcbr0 with SUBNET.1/24 in the root network namespace  = slurmctld's address (`ctl`)
#   node i: network namespace bdc-node<i>, veth bdcv<i> (bridge side) <-> bdc0 (node side) with
#           SUBNET.(10+i)/24, lo up, no default route (nothing leaves the bridge)
#   Slurm: partition `cluster`, nodes node1..N, SlurmctldPort 6827, SlurmdPort 6828.
#
# Why it is built this way (Slurm 22.05 documentation, https://slurm.schedmd.com/slurm.conf.html):
# - CommunicationParameters=NoCtldInAddrAny,NoInAddrAny: each daemon binds the address its own
#   host name resolves to, so slurmctld listens only on the bridge and each slurmd on its node.
# - SlurmctldHost must be the controller's host name, hence its own UTS namespace (`ctl`).
# - TmpFS and SlurmdSpoolDir are per node (%n): srun --mpi=pmix creates
#   <TmpFS>/spmix_appdir_<uid>_<job>.<step> and sockets in the spool directory on every node,
#   which would collide on a shared file system.
# - Nodes are entered with `nsenter --net=/run/netns/NAME`, not `ip netns exec`: the latter
#   remounts /sys for the namespace (ip-netns(8)) and so hides /sys/fs/cgroup, without which
#   slurmd does not start. start_slurmd remounts /sys itself and puts the cgroup tree back.
# - slurmstepd outlives slurmd (it is re-parented), so stop cancels the jobs first and then kills
#   whatever still runs in a node's network namespace (`ip netns pids`).
set -euo pipefail

RUN=${BEDROCK_CLUSTER_RUN:-/tmp/bedrock-deploy-cluster}
SUBNET=${BEDROCK_CLUSTER_SUBNET:-10.77.0}
CTLD_PORT=${BEDROCK_CLUSTER_SLURMCTLD_PORT:-6827}
SLURMD_PORT=${BEDROCK_CLUSTER_SLURMD_PORT:-6828}
TIMEOUT=${BEDROCK_CLUSTER_TIMEOUT:-60}
MAX_NODES=8
PREFIX=${BEDROCK_CLUSTER_PREFIX:-bdc}   # names of the bridge, namespaces and veths
case "$PREFIX" in
  [a-z]|[a-z][a-z0-9]|[a-z][a-z0-9][a-z0-9]|[a-z][a-z0-9][a-z0-9][a-z0-9]) ;;
  *) echo "[cluster] error: BEDROCK_CLUSTER_PREFIX=$PREFIX: 1 to 4 lower-case letters or digits" >&2; exit 1 ;;
esac
BRIDGE=${PREFIX}br0
NS_PREFIX=$PREFIX-node
VETH_PREFIX=${PREFIX}v
NODE_IF=bdc0               # inside each node (site-profiles/local-cluster.yaml names it)
PARTITION=cluster
CTL_NAME=ctl
CTL_IP=$SUBNET.1

CONF=$RUN/etc/slurm.conf
HOSTS=$RUN/etc/hosts
PIDFILE=$RUN/pids          # "<name> <pid>" of every daemon we started
CREATED=$RUN/created       # "<kind> <name>" of every kernel object we created
NODESFILE=$RUN/nodes       # node count of the running cluster
LEASES=$RUN/leases
MUNGE_DIR=$RUN/munge
MUNGE_SOCKET=$MUNGE_DIR/sock/munge.socket
PACKAGES=(slurm-wlm slurmctld slurmd slurm-client munge iproute2 util-linux)
export SLURM_CONF=$CONF

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
. "$(dirname "${BASH_SOURCE[0]}")/../shell/fixture-helpers.sh"

node_ip() { echo "$SUBNET.$((10 + $1))"; }
ns_name() { echo "$NS_PREFIX$1"; }
veth_name() { echo "$VETH_PREFIX$1"; }

# ---- bookkeeping ------------------------------------------------------------------------------
# Ours = alive, not a zombie, and still running the recorded program (PIDs wrap quickly).
record_pid() { echo "$1 $2" >> "$PIDFILE"; }
record_created() { echo "$1 $2" >> "$CREATED"; }
was_created() { [ -f "$CREATED" ] && grep -qx "$1 $2" "$CREATED"; }
running_nodes() { [ -s "$NODESFILE" ] && cat "$NODESFILE" || echo 0; }
program_of() { case "$1" in slurmd-*) echo slurmd ;; *) echo "$1" ;; esac; }

all_alive() { # n: every daemon of an n-node cluster is ours and alive
  local n=$1 i
  ((n > 0)) || return 1
  pid_alive "$(recorded munged)" munged || return 1
  pid_alive "$(recorded slurmctld)" slurmctld || return 1
  for i in $(seq 1 "$n"); do pid_alive "$(recorded "slurmd-node$i")" slurmd || return 1; done
}

any_recorded_alive() {
  local name pid
  [ -f "$PIDFILE" ] || return 1
  while read -r name pid; do
    pid_alive "$pid" "$(program_of "$name")" && return 0
  done < "$PIDFILE"
  return 1
}

# ---- checks before touching anything ----------------------------------------------------------
port_taken() { # port: is anything listening on it (any address) in the root network namespace?
  ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

preflight() { # n
  local n=$1 i problems=()
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, bridge, daemons)"
  for tool in ip nsenter unshare ss slurmctld slurmd munged mungekey sinfo; do
    command -v "$tool" >/dev/null 2>&1 || problems+=("$tool not found (run: bash .ci/install)")
  done
  ((${#problems[@]})) && die "${problems[*]}"
  case "$SUBNET" in
    *[!0-9.]*|*..*|.*|*.) die "BEDROCK_CLUSTER_SUBNET=$SUBNET: give the first three numbers of an IPv4 /24, e.g. 10.77.0" ;;
  esac
  if ip link show "$BRIDGE" >/dev/null 2>&1 && ! was_created bridge "$BRIDGE"; then
    problems+=("a network device named $BRIDGE exists and was not created by this script")
  fi
  for i in $(seq 1 "$n"); do
    if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$(ns_name "$i")" &&
        ! was_created netns "$(ns_name "$i")"; then
      problems+=("network namespace $(ns_name "$i") exists and was not created by this script")
    fi
    if ip link show "$(veth_name "$i")" >/dev/null 2>&1 && ! was_created veth "$(veth_name "$i")"; then
      problems+=("a network device named $(veth_name "$i") exists and was not created by this script")
    fi
  done
  # The subnet must be ours alone: no address or route of this host may fall in it.
  if ! was_created bridge "$BRIDGE"; then
    if ip -4 -o addr show 2>/dev/null | awk '{print $4}' | grep -q "^${SUBNET//./\\.}\."; then
      problems+=("subnet $SUBNET.0/24 is already used by an address of this host (set BEDROCK_CLUSTER_SUBNET)")
    elif ip -4 route show 2>/dev/null | grep -q "^${SUBNET//./\\.}\."; then
      problems+=("subnet $SUBNET.0/24 is already routed on this host (set BEDROCK_CLUSTER_SUBNET)")
    fi
  fi
  for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    if port_taken "$port"; then
      problems+=("TCP port $port is already in use on this host (set BEDROCK_CLUSTER_SLURMCTLD_PORT / BEDROCK_CLUSTER_SLURMD_PORT)")
    fi
  done
  if ((${#problems[@]})); then
    local p
    for p in "${problems[@]}"; do log "error: $p"; done
    die "not starting: nothing was changed"
  fi
}

# ---- files ------------------------------------------------------------------------------------
write_files() { # n
  local n=$1 i
  # A fresh start: what the previous cluster left in its logs, spools and TmpFS goes.
  rm -rf "$RUN"/log "$RUN"/spool "$RUN"/tmp "$RUN"/stage
  mkdir -p "$RUN"/{etc,state,log,run} "$LEASES"
  for i in $(seq 1 "$n"); do mkdir -p "$RUN/spool/node$i" "$RUN/tmp/node$i"; done
  {
    echo "127.0.0.1 localhost"
    echo "$CTL_IP $CTL_NAME"
    for i in $(seq 1 "$n"); do echo "$(node_ip "$i") node$i"; done
  } > "$HOSTS"
  # slurmd -C: "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1
  # RealMemory=24103"; every node gets this host's CPUs (they all share them).
  local hw="" field
  for field in $(slurmd -C | head -n 1); do
    case "${field%%=*}" in
      CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore) hw="$hw $field" ;;
    esac
  done
  [ -n "$hw" ] || die "cannot read this host's CPUs from 'slurmd -C'"
  local nodes="node[1-$n]" addrs="$SUBNET.[11-$((10 + n))]"
  if [ "$n" -eq 1 ]; then nodes=node1; addrs=$(node_ip 1); fi
  cat > "$CONF" <<CONF
# written by bedrock-deploy tests/cluster/cluster.sh (runtime dir $RUN); $n node(s)
ClusterName=bdc
SlurmctldHost=$CTL_NAME($CTL_IP)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
EnforcePartLimits=ALL
ReturnToService=2
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$RUN/state
SlurmdSpoolDir=$RUN/spool/%n
TmpFS=$RUN/tmp/%n
SlurmctldPidFile=$RUN/run/slurmctld.pid
SlurmdPidFile=$RUN/run/slurmd-%n.pid
SlurmctldLogFile=$RUN/log/slurmctld.log
SlurmdLogFile=$RUN/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$RUN/log/jobcomp.log
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=$nodes NodeAddr=$addrs$hw RealMemory=1000 State=UNKNOWN
PartitionName=$PARTITION Nodes=$nodes Default=YES MaxTime=INFINITE State=UP
CONF
  chmod 644 "$CONF" "$HOSTS"
  # munged: our own key and socket (a directory not writable by others).
  mkdir -p "$MUNGE_DIR/sock"
  chmod 711 "$MUNGE_DIR"; chmod 755 "$MUNGE_DIR/sock"
  [ -s "$MUNGE_DIR/munge.key" ] || mungekey --create --keyfile="$MUNGE_DIR/munge.key" >/dev/null
  chmod 600 "$MUNGE_DIR/munge.key"
}

# ---- network ----------------------------------------------------------------------------------
create_network() { # n
  local n=$1 i ns veth
  if [ ! -d /run/netns ]; then record_created dir /run/netns; fi
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    record_created bridge "$BRIDGE"
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$CTL_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for i in $(seq 1 "$n"); do
    ns=$(ns_name "$i"); veth=$(veth_name "$i")
    if ! ip netns list | awk '{print $1}' | grep -qx "$ns"; then
      record_created netns "$ns"
      ip netns add "$ns"
    fi
    if ! ip link show "$veth" >/dev/null 2>&1; then
      record_created veth "$veth"
      ip link add "$veth" type veth peer name "$NODE_IF" netns "$ns"
    fi
    ip link set "$veth" master "$BRIDGE" up
    ip -n "$ns" addr replace "$(node_ip "$i")/24" dev "$NODE_IF"
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$NODE_IF" up
  done
}

delete_network() {
  local kind name
  [ -f "$CREATED" ] || return 0
  # veths first (deleting one end removes both at once), then namespaces, then the bridge.
  while read -r kind name; do
    [ "$kind" = veth ] || continue
    ip link del "$name" 2>/dev/null || true
  done < "$CREATED"
  while read -r kind name; do
    [ "$kind" = netns ] || continue
    kill_in_netns "$name"
    ip netns del "$name" 2>/dev/null || true
  done < "$CREATED"
  while read -r kind name; do
    [ "$kind" = bridge ] || continue
    ip link del "$name" 2>/dev/null || true
  done < "$CREATED"
  # /run/netns: `ip netns add` created it as a bind mount onto itself; remove it if we made it
  # and no other namespace lives there.
  if grep -qx "dir /run/netns" "$CREATED" && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
    umount /run/netns 2>/dev/null || true
    rmdir /run/netns 2>/dev/null || true
  fi
  rm -f "$CREATED"
}

kill_in_netns() { # ns: whatever still runs there was started in our cluster (stray job steps)
  local ns=$1 pids i
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns" || return 0
  for i in 1 2 3; do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
  done
}

# ---- daemons ----------------------------------------------------------------------------------
start_munged() {
  pid_alive "$(recorded munged)" munged && return 0
  rm -f "$MUNGE_DIR/munged.pid"
  # --force: munged refuses a socket whose parent directories are not traversable by everyone
  # (a run directory inside a private temporary directory); every client here is root.
  munged --force --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
    --pid-file="$MUNGE_DIR/munged.pid" --log-file="$RUN/log/munged.log" \
    --seed-file="$MUNGE_DIR/munged.seed" 9>&- ||
    { tail -n 5 "$RUN/log/munged.log" >&2 || true; die "munged did not start"; }
  local pid; pid=$(wait_pidfile "$MUNGE_DIR/munged.pid") || die "munged wrote no pidfile"
  record_pid munged "$pid"
  munge -S "$MUNGE_SOCKET" -n | unmunge -S "$MUNGE_SOCKET" >/dev/null ||
    die "munge -n | unmunge fails on $MUNGE_SOCKET"
}

start_slurmctld() {
  rm -f "$RUN/run/slurmctld.pid"
  # Its own UTS namespace (host name `ctl` = SlurmctldHost) and mount namespace (the cluster's
  # hosts file over /etc/hosts, visible to slurmctld only). -c: no old job state.
  unshare --uts --mount --propagation private sh -c \
    'mount --bind "$1" /etc/hosts && hostname "$2" && exec slurmctld -c' \
    sh "$HOSTS" "$CTL_NAME" 9>&-
  local pid
  pid=$(wait_pidfile "$RUN/run/slurmctld.pid") ||
    { tail -n 20 "$RUN/log/slurmctld.log" >&2 || true; die "slurmctld did not start"; }
  record_pid slurmctld "$pid"
}

start_slurmd() { # i
  local i=$1 name="node$1" pid stage="$RUN/stage/node$1"
  rm -f "$RUN/run/slurmd-$name.pid"
  mkdir -p "$stage"
  # In the node's own mount namespace: the cluster's hosts file over /etc/hosts, and a sysfs
  # mounted from inside the node's network namespace, so /sys/class/net lists the node's own
  # interfaces (lo, bdc0) as on a real node (UCX and hwloc read it); the host's cgroup tree is
  # moved back under it (slurmd needs /sys/fs/cgroup). Nothing of this is visible outside.
  nsenter --net="/run/netns/$(ns_name "$i")" \
    unshare --uts --mount --propagation private sh -c \
    'mount --bind "$1" /etc/hosts && mount --rbind /sys/fs/cgroup "$3" &&
     mount -t sysfs sysfs /sys && mount --move "$3" /sys/fs/cgroup &&
     hostname "$2" && exec slurmd -N "$2"' \
    sh "$HOSTS" "$name" "$stage" 9>&-
  pid=$(wait_pidfile "$RUN/run/slurmd-$name.pid") ||
    { tail -n 20 "$RUN/log/slurmd-$name.log" >&2 || true; die "slurmd of $name did not start"; }
  record_pid "slurmd-$name" "$pid"
}

wait_idle() { # n
  local n=$1 t0=$SECONDS idle=0
  while ((SECONDS - t0 < TIMEOUT)); do
    idle=$(sinfo -h -N -p "$PARTITION" -o '%N %T' 2>/dev/null | awk '$2 == "idle" || $2 == "mixed" || $2 == "allocated" {n++} END {print n + 0}')
    ((idle >= n)) && return 0
    sleep 0.2
  done
  log "only $idle of $n node(s) idle after ${TIMEOUT}s:"; sinfo -N >&2 || true
  return 1
}

stop_daemons() {
  local name pid i
  if pid_alive "$(recorded slurmctld)" slurmctld; then
    # Cancel this cluster's jobs first: slurmstepd outlives slurmd.
    local jobs; jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for i in $(seq 1 50); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
    fi
  fi
  [ -f "$PIDFILE" ] || return 0
  # slurmds, then slurmctld, then munged.
  for pass in slurmd slurmctld munged; do
    while read -r name pid; do
      [ "$(program_of "$name")" = "$pass" ] || continue
      if pid_alive "$pid" "$pass"; then
        kill -TERM "$pid" 2>/dev/null || true
      fi
    done < "$PIDFILE"
    while read -r name pid; do
      [ "$(program_of "$name")" = "$pass" ] || continue
      for i in $(seq 1 100); do pid_alive "$pid" "$pass" || break; sleep 0.1; done
      if pid_alive "$pid" "$pass"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done < "$PIDFILE"
  done
  rm -f "$PIDFILE"
}

teardown() {
  stop_daemons
  delete_network
  rm -f "$NODESFILE" "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
}

start() { # n
  local n=$1 have
  have=$(running_nodes)
  if all_alive "$have"; then
    if ((have >= n)); then
      log "already running with $have node(s)"
      wait_idle "$have"
      return 0
    fi
    local others; others=$(live_leases)
    if ((others > 0)); then
      die "running with $have node(s) and used by $others session(s); --nodes $n needs a" \
        "restart: stop them first, or ask for at most $have node(s)"
    fi
    log "restarting with $n node(s) (was $have)"
  fi
  install_packages
  # Half of ours left (a daemon died), or a crash left objects behind: clean up first.
  if any_recorded_alive || [ -s "$CREATED" ]; then
    log "cleaning up what a previous start left"
    teardown
  fi
  preflight "$n"
  write_files "$n"
  : > "$PIDFILE"
  # Whatever stops this start half-way (an error, die, a signal) undoes what it did.
  trap 'log "start failed: undoing it"; set +e; teardown' EXIT
  local t0=$SECONDS i
  start_munged
  create_network "$n"
  start_slurmctld
  for i in $(seq 1 "$n"); do start_slurmd "$i"; done
  echo "$n" > "$NODESFILE"
  wait_idle "$n" || die "the nodes did not become idle (logs: $RUN/log)"
  trap - EXIT
  log "started $n node(s) in $((SECONDS - t0))s: slurmctld=$(recorded slurmctld)" \
    "on $CTL_IP:$CTLD_PORT, nodes node1..node$n on $SUBNET.11..$(node_ip "$n")"
}

status() {
  local n name pid rc=0 i
  n=$(running_nodes)
  echo "run directory: $RUN"
  echo "SLURM_CONF=$CONF"
  echo "nodes: $n"
  if [ -f "$PIDFILE" ]; then
    while read -r name pid; do
      if pid_alive "$pid" "$(program_of "$name")"; then echo "$name $pid alive"
      else echo "$name $pid not running"; rc=1; fi
    done < "$PIDFILE"
  fi
  for i in $(seq 1 "$n"); do echo "node$i $(ns_name "$i") $NODE_IF $(node_ip "$i")"; done
  echo "leases: $(live_leases)"
  if all_alive "$n"; then sinfo -N 2>&1 || true; return 0; fi
  ((n == 0)) && ! any_recorded_alive && { echo "not running"; return 3; }
  return "$rc"
}

node_exec() { # NODE|ctl CMD...
  local node=${1:?usage: cluster.sh exec NODE CMD...}; shift
  (($#)) || die "usage: cluster.sh exec NODE CMD..."
  if [ "$node" = "$CTL_NAME" ]; then
    # The controller's host name and hosts file, the host's network: where srun works from
    # (it binds its own host name's address, which the nodes must reach).
    local pid; pid=$(recorded slurmctld)
    pid_alive "$pid" slurmctld || die "the cluster is not running (cluster.sh status)"
    exec nsenter -t "$pid" -u -m --wd="$PWD" -- "$@"
  fi
  local pid; pid=$(recorded "slurmd-$node")
  pid_alive "$pid" slurmd || die "$node is not running (cluster.sh status)"
  exec nsenter -t "$pid" -n -u -m --wd="$PWD" -- "$@"
}

main() {
  local action=${1:-status} lease="" nodes=2
  shift || true
  case "$action" in
    env)
      echo "export SLURM_CONF=$(printf '%q' "$CONF")"
      echo "export BEDROCK_CLUSTER_RUN=$(printf '%q' "$RUN")"
      return 0 ;;
    exec) node_exec "$@" ;;
  esac
  while (($#)); do
    case "$1" in
      --lease) lease=${2:?--lease needs a PID}; shift 2 ;;
      --nodes) nodes=${2:?--nodes needs a number}; shift 2 ;;
      --nodes=*) nodes=${1#--nodes=}; shift ;;
      -h|--help) sed -n '2,36p' "$0"; return 0 ;;
      *) die "unknown argument: $1 (usage: cluster.sh start [--nodes N] | stop | status | env | exec NODE CMD...)" ;;
    esac
  done
  case "$nodes" in ''|*[!0-9]*) die "--nodes $nodes: give a number from 1 to $MAX_NODES" ;; esac
  ((nodes >= 1 && nodes <= MAX_NODES)) || die "--nodes $nodes: give a number from 1 to $MAX_NODES"
  mkdir -p "$RUN" "$LEASES"
  [ "$action" = status ] && { status; return; }
  # One start/stop at a time: several pytest sessions may share this cluster. The daemons are
  # started with this descriptor closed (9>&-), or they would hold the lock forever.
  exec 9> "$RUN/lock"
  flock -w 180 9 || die "timed out waiting for $RUN/lock"
  case "$action" in
    start)
      start "$nodes"
      # A start by hand holds a lease until a stop by hand.
      : > "$LEASES/${lease:-manual}"
      ;;
    stop)
      if [ -n "$lease" ]; then
        rm -f "$LEASES/$lease"
        local left; left=$(live_leases)
        if [ "$left" -gt 0 ]; then log "still used by $left other session(s): left running"; return 0; fi
      fi
      rm -f "$LEASES"/*
      if ! any_recorded_alive && [ ! -s "$CREATED" ]; then
        log "not running: nothing to stop"
        rm -f "$NODESFILE"
        return 0
      fi
      teardown
      log "stopped: no daemon, namespace, bridge or veth of this cluster is left"
      ;;
    status) status ;;
    *) echo "usage: $0 start [--nodes N] [--lease PID] | stop [--lease PID] | status | env | exec NODE CMD..." >&2; exit 2 ;;
  esac
}

main "$@"
