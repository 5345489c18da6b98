#!/usr/bin/env bash
# A real single-node Slurm for the test suite: slurmctld + slurmd on 127.0.0.1 of this host.
#
#   local-slurm.sh start  [--lease PID]   install Slurm (apt, only if missing), write slurm.conf,
#                                         start both daemons unless ours are already up, wait
#                                         until the node is idle. With --lease, PID (a pytest
#                                         session) is recorded as a user of this instance;
#                                         without, a "manual" lease is held until a plain stop.
#   local-slurm.sh stop   [--lease PID]   with --lease: drop that lease, and stop the daemons only
#                                         when no live lease is left (dead PIDs do not count).
#                                         Without: drop every lease and stop now.
#                                         Only the PIDs this script recorded are killed, and only
#                                         if they still run slurmctld/slurmd (PIDs wrap quickly).
#   local-slurm.sh status                 recorded PIDs, liveness, leases, sinfo.
#   local-slurm.sh env                    shell lines for a client: eval "$(local-slurm.sh env)".
#
# Nothing machine-wide is written: the configuration is $RUN/etc/slurm.conf, and every daemon
# and client finds it through SLURM_CONF (the test fixture exports it; see `env`). Before
# anything is written or started, the ports 6817/6818 must be free (or be ours).
# Settings (https://slurm.schedmd.com/slurm.conf.html, Slurm 22.05):
#   auth/none + cred/none (no munged), task/affinity, select/cons_tres CR_Core,
#   batch_sched_delay=0 (else a batch job waits for the next scheduling pass, seconds),
#   EnforcePartLimits=ALL (an impossible request is refused at submit time instead of pending
#   forever), sockets bound to 127.0.0.1 (NoCtldInAddrAny,NoInAddrAny), node line from
#   `slurmd -C`, partition `debug` (site-profiles/local-slurm.yaml uses it).
# Runtime state lives in $LOCAL_SLURM_RUN (default /tmp/bedrock-deploy-slurm).
set -euo pipefail

RUN=${LOCAL_SLURM_RUN:-/tmp/bedrock-deploy-slurm}
TIMEOUT=${LOCAL_SLURM_TIMEOUT:-60}
CONF=$RUN/etc/slurm.conf
PIDFILE=$RUN/pids
LEASES=$RUN/leases
MARK="# managed by bedrock-deploy tests/slurm/local-slurm.sh"
PACKAGES=(slurm-wlm slurmctld slurmd slurm-client)
PORTS=(6817 6818)
export SLURM_CONF=$CONF

log() { printf '[local-slurm] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
. "$(dirname "${BASH_SOURCE[0]}")/../shell/fixture-helpers.sh"

# `slurmd -C` prints e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2
# ThreadsPerCore=1 RealMemory=24103"; keep its fields, bind the node to 127.0.0.1.
node_line() {
  local line key value out=""
  line=$(slurmd -C | head -n 1)
  for field in $line; do
    key=${field%%=*}; value=${field#*=}
    case "$key" in
      NodeName) out="NodeName=$value NodeAddr=127.0.0.1$out" ;;
      CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore) out="$out $key=$value" ;;
      # A little under the measured value so the node never goes INVALID on a memory wobble.
      RealMemory) out="$out RealMemory=$((value * 95 / 100))" ;;
    esac
  done
  case "$out" in NodeName=*) printf '%s State=UNKNOWN\n' "$out" ;;
                 *) die "cannot read the node from 'slurmd -C': $line" ;; esac
}

write_conf() { # sets CONF_CHANGED
  mkdir -p "$RUN"/{etc,state,spool,log}
  local node; node=$(node_line)
  local name=${node#NodeName=}; name=${name%% *}
  local tmp; tmp=$(mktemp "$RUN/slurm.conf.XXXXXX")
  cat > "$tmp" <<CONF
$MARK (runtime dir $RUN)
ClusterName=bedrock-deploy-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
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
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$RUN/state
SlurmdSpoolDir=$RUN/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$RUN/log/slurmctld.log
SlurmdLogFile=$RUN/log/slurmd.log
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
$node
PartitionName=debug Nodes=$name Default=YES MaxTime=INFINITE State=UP
CONF
  if cmp -s "$tmp" "$CONF"; then rm -f "$tmp"; CONF_CHANGED=0
  else chmod 644 "$tmp"; mv "$tmp" "$CONF"; CONF_CHANGED=1; fi
}

# Ours = alive, not a zombie, and still running the recorded program.

wait_idle() {
  local t0=$SECONDS state=""
  while ((SECONDS - t0 < TIMEOUT)); do
    state=$(sinfo -h -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in idle|mixed|allocated|completing) return 0 ;; esac
    sleep 0.25
  done
  log "node state '${state:-unreachable}' after ${TIMEOUT}s"; sinfo -R >&2 || true
  return 1
}

ports_taken() { # prints the ports of ours that something listens on
  local port
  for port in "${PORTS[@]}"; do
    if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then echo "$port"; fi
  done
}

start() {
  local cpid dpid taken
  cpid=$(recorded slurmctld); dpid=$(recorded slurmd)
  # Before touching anything: the ports must be free unless our own daemons hold them.
  if ! pid_alive "$cpid" slurmctld && ! pid_alive "$dpid" slurmd; then
    taken=$(ports_taken | tr '\n' ' ')
    [ -z "$taken" ] ||
      die "port(s) ${taken% } taken by a Slurm (or other program) this script did not start; nothing was changed"
  fi
  install_packages
  CONF_CHANGED=0
  write_conf
  if pid_alive "$cpid" slurmctld && pid_alive "$dpid" slurmd && [ "$CONF_CHANGED" -eq 0 ]; then
    log "already running (slurmctld=$cpid slurmd=$dpid)"
    wait_idle
    return 0
  fi
  # Half of ours left (one daemon died) or the configuration changed: start clean.
  if pid_alive "$cpid" slurmctld || pid_alive "$dpid" slurmd; then stop_daemons; fi
  taken=$(ports_taken | tr '\n' ' ')
  [ -z "$taken" ] || die "port(s) ${taken% } still taken after stopping our daemons"
  rm -f "$RUN/slurmctld.pid" "$RUN/slurmd.pid"
  : > "$PIDFILE"
  # -c: start without old job state (a fresh cluster each time). Both daemonize.
  slurmctld -c
  cpid=$(wait_pidfile "$RUN/slurmctld.pid") ||
    { tail -n 20 "$RUN/log/slurmctld.log" >&2 || true; die "slurmctld did not start"; }
  echo "slurmctld $cpid" >> "$PIDFILE"
  slurmd
  dpid=$(wait_pidfile "$RUN/slurmd.pid") ||
    { tail -n 20 "$RUN/log/slurmd.log" >&2 || true; die "slurmd did not start"; }
  echo "slurmd $dpid" >> "$PIDFILE"
  wait_idle
  log "started slurmctld=$cpid slurmd=$dpid"
}

stop_daemons() {
  [ -f "$PIDFILE" ] || { log "nothing recorded in $PIDFILE: nothing to stop"; return 0; }
  local cpid name pid i
  cpid=$(recorded slurmctld)
  if pid_alive "$cpid" slurmctld; then
    # Cancel this cluster's jobs first so that no slurmstepd outlives slurmd.
    local jobs; jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for i in $(seq 1 50); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
    fi
  fi
  for name in slurmd slurmctld; do
    pid=$(recorded "$name")
    if pid_alive "$pid" "$name"; then
      kill -TERM "$pid"
      for i in $(seq 1 100); do pid_alive "$pid" "$name" || break; sleep 0.1; done
      pid_alive "$pid" "$name" && kill -KILL "$pid"
      log "stopped $name (pid $pid)"
    elif [ -n "$pid" ]; then
      log "$name pid $pid is not running (or is another program now): left alone"
    fi
  done
  rm -f "$PIDFILE"
}

status() {
  local name pid
  for name in slurmctld slurmd; do
    pid=$(recorded "$name")
    if pid_alive "$pid" "$name"; then echo "$name $pid alive"; else echo "$name ${pid:-none} not running"; fi
  done
  echo "leases: $(live_leases)"
  sinfo 2>&1 || true
  pid_alive "$(recorded slurmctld)" slurmctld && pid_alive "$(recorded slurmd)" slurmd
}

main() {
  local action=${1:-status} lease=""
  shift || true
  while (($#)); do
    case "$1" in
      --lease) lease=${2:?--lease needs a PID}; shift 2 ;;
      *) die "unknown argument: $1" ;;
    esac
  done
  if [ "$action" = env ]; then
    echo "export SLURM_CONF=$(printf '%q' "$CONF")"
    return 0
  fi
  mkdir -p "$RUN" "$LEASES"
  # One start/stop at a time: several pytest sessions may share this machine.
  exec 9> "$RUN/lock"
  flock -w 120 9 || die "timed out waiting for $RUN/lock"
  case "$action" in
    start)
      start
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
      stop_daemons
      ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status [--lease PID] | env" >&2; exit 2 ;;
  esac
}

main "$@"
