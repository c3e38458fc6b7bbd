#!/usr/bin/env bash
# A single-node SLURM cluster on localhost (Debian's slurm-wlm and munge), to try the cluster path
# on one machine and to test it. Needs root (the daemons and /etc/slurm/slurm.conf).
#
#   scripts/local-slurm.sh install        apt-get install slurm-wlm munge (if missing)
#   scripts/local-slurm.sh start [DIR]    write the config, start munged, slurmctld, slurmd; wait for idle
#   scripts/local-slurm.sh stop [DIR]     stop the daemons by the PID files they wrote; remove our config
#   scripts/local-slurm.sh status [DIR]
#
# DIR (default /tmp/varreason-slurm) holds state, spool, logs and PID files. The partition is `debug`.
# VARREASON_SLURM_PROCTRACK=cgroup (default linuxproc) tracks a job's processes as most clusters do,
# in a cgroup, with /etc/slurm/cgroup.conf (ours, removed by stop): SLURM then signals only a job
# step's first process, not its children (docs/slurm.md#time-limits-and-preemption). Needs cgroups.
# Why /etc/slurm, -N localhost and the other choices: docs/slurm.md (local cluster).
set -euo pipefail

cmd=${1:-}
DIR=$(realpath -m "${2:-/tmp/varreason-slurm}")
CONF=/etc/slurm/slurm.conf
CGROUP_CONF=/etc/slurm/cgroup.conf
PROCTRACK=${VARREASON_SLURM_PROCTRACK:-linuxproc}
MARK="Written by varreason scripts/local-slurm.sh"

die() { echo "local-slurm: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "needs root (daemons and $CONF)"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...  (wall clock: a hung client counts too)
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if timeout 5 "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  diagnose
  die "timed out after ${limit}s waiting for $what (logs: $DIR/log)"
}

diagnose() {  # what a failed start looked like, on stderr, so a CI log shows the cause
  {
    echo "--- local-slurm diagnostics (nproc $(nproc), $(awk '/MemTotal/ {print $2}' /proc/meminfo) kB)"
    timeout 5 sinfo -N -o '%N %T %c %m %E' 2>&1 || true
    timeout 5 scontrol show node localhost 2>&1 | sed -n '1,12p' || true
    timeout 5 slurmd -C 2>&1 | head -2 || true
    for f in "$DIR"/log/slurmctld.log "$DIR"/log/slurmd.log; do
      if [ -f "$f" ]; then echo "--- tail $f"; tail -n 25 "$f"; fi
    done
    echo "--- end of diagnostics"
  } >&2
}

node_state() { timeout 5 sinfo -h -n localhost -o %T 2>/dev/null | head -1; }
node_idle() { [ "$(node_state)" = idle ]; }

# Wait for the node to be idle. A node that registered but came up down, drained or invalid (a
# slow first registration, a state left from an earlier start) is resumed once; a slurmd that never
# registered is restarted once. (A CI start once timed out here after 30 s; its cause was not seen,
# hence the diagnostics.)
wait_node_idle() {
  local deadline=$((SECONDS + 90)) resumed=0 restarted=0 state
  while [ "$SECONDS" -lt "$deadline" ]; do
    state=$(node_state || true)
    case "$state" in
      idle) return 0 ;;
      down*|drain*|inval*|fail*)
        if [ $resumed = 0 ]; then
          echo "local-slurm: node is '$state'; resuming it" >&2
          timeout 5 scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
          resumed=1
        fi ;;
    esac
    if [ $restarted = 0 ] && [ $((deadline - SECONDS)) -lt 60 ]; then
      echo "local-slurm: node is '${state:-unknown}' after 30s; restarting slurmd" >&2
      stop_pid slurmd "$DIR/slurmd.pid"
      slurmd -N localhost
      restarted=1
    fi
    sleep 0.5
  done
  diagnose
  die "timed out after 90s waiting for the node to be idle (state '${state:-none}'; logs: $DIR/log)"
}

install() {
  need_root
  if command -v slurmctld >/dev/null && command -v munged >/dev/null; then
    echo "local-slurm: slurm-wlm and munge already installed"; return 0
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
  local cpus mem
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
  case "$PROCTRACK" in linuxproc|cgroup) ;; *) die "VARREASON_SLURM_PROCTRACK: linuxproc or cgroup, not '$PROCTRACK'" ;; esac
  mkdir -p "$DIR"/{state,spool,log} /etc/slurm
  if [ "$PROCTRACK" = cgroup ]; then
    if [ -f "$CGROUP_CONF" ] && ! grep -q "$MARK" "$CGROUP_CONF"; then
      die "$CGROUP_CONF is someone else's: not starting with VARREASON_SLURM_PROCTRACK=cgroup"
    fi
    printf '# %s\nCgroupAutomount=yes\nConstrainCores=no\nConstrainRAMSpace=no\n' "$MARK" > "$CGROUP_CONF"
  fi
  if [ -f "$CONF" ] && ! grep -q "$MARK" "$CONF"; then
    mv "$CONF" "$CONF.varreason-backup"  # someone else's: put back by stop
    echo "local-slurm: moved the existing $CONF to $CONF.varreason-backup" >&2
  fi
  cat > "$CONF" <<CONF
# $MARK: a one-node cluster on localhost.
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/$PROCTRACK
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# SIGTERM at a time limit, scancel or preemption; SIGKILL this many seconds later (SLURM's default)
KillWait=30
# keep finished jobs visible to squeue, which the test profile polls (no accounting here)
MinJobAge=600
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  need_root
  command -v slurmctld >/dev/null || die "slurm-wlm is not installed: run '$0 install'"
  stop  # daemons left by an earlier start with this DIR (their PID files) would hold the ports
  write_conf
  mkdir -p /run/munge && chown munge:munge /run/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    wait_for 10 munged sh -c 'munge -n | unmunge'
    cp /run/munge/munged.pid "$DIR/munged.pid"  # ours to stop; a munged already running is left alone
  fi
  slurmctld
  wait_for 20 slurmctld test -s "$DIR/slurmctld.pid"
  slurmd -N localhost
  wait_node_idle
  echo "local-slurm: up (partition debug, $(nproc) CPUs); state in $DIR"
}

stop_pid() {  # stop_pid NAME PIDFILE
  local pidfile=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "local-slurm: stopped $1 ($pid)"
  fi
  rm -f "$pidfile"
}

stop() {
  stop_pid slurmd "$DIR/slurmd.pid"
  stop_pid slurmctld "$DIR/slurmctld.pid"
  stop_pid munged "$DIR/munged.pid"
  # Our config must not outlive our controller: with a slurm.conf naming a controller that is not
  # there, every `scontrol` waits ~9 s, and Snakemake's SLURM plugin runs one each time it starts.
  if [ -f "$CGROUP_CONF" ] && grep -q "$MARK" "$CGROUP_CONF"; then rm -f "$CGROUP_CONF"; fi
  if [ -f "$CONF" ] && grep -q "$MARK" "$CONF"; then
    rm -f "$CONF"
    if [ -f "$CONF.varreason-backup" ]; then mv "$CONF.varreason-backup" "$CONF"; fi
  fi
}

case "$cmd" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) sinfo; squeue ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
