#!/usr/bin/env bash
# Starts and stops a single-node Slurm (munged, slurmctld, slurmd) on localhost for the Slurm executor test,
# a single-node setup without systemd or cgroups: proctrack linuxproc, accounting off, state in a temporary directory.
# Installs nothing: CI provides `slurm-wlm munge` (apt). Needs root (slurmd and munged run as root/munge).
#
#   local-slurm.sh start DIR   writes DIR/slurm.conf, starts the daemons, waits until the node is idle;
#                              prints `SLURM_CONF=DIR/slurm.conf` on success, or `skip: <reason>` and exits 3
#   local-slurm.sh stop DIR    stops the daemons this script started (by the PIDs in DIR), leaves others alone
set -u

action=${1:-}
dir=${2:-}
if [[ -z "$action" || -z "$dir" ]]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi

skip() {
  echo "skip: $*"
  exit 3
}

# A TCP port nobody listens on, starting from $1.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

stop_pidfile() {
  local file=$1
  [[ -f "$file" ]] || return 0
  local pid
  pid=$(cat "$file" 2>/dev/null)
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$file"
}

start() {
  for tool in munged munge unmunge slurmctld slurmd sbatch squeue sinfo scontrol; do
    command -v "$tool" >/dev/null 2>&1 || [[ -x "/usr/sbin/$tool" ]] || skip "$tool is not installed (apt-get install slurm-wlm munge)"
  done
  [[ "$(id -u)" == 0 ]] || skip "the daemons need root (running as $(id -un))"
  if [[ ! -f /etc/munge/munge.key ]] && command -v mungekey >/dev/null 2>&1; then
    # Some minimal installs skip the key the package normally generates; make one (munge-owned, mode 400).
    mkdir -p /etc/munge
    mungekey --create --keyfile /etc/munge/munge.key >/dev/null 2>&1 && chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  fi
  [[ -f /etc/munge/munge.key ]] || skip "no munge key at /etc/munge/munge.key (mungekey --create makes one)"

  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  local host cpus
  host=$(hostname -s)
  cpus=$(nproc)

  # munged: reuse a running one (the socket is machine-wide), otherwise start ours and remember its PID.
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    su -s /bin/sh munge -c /usr/sbin/munged >"$dir/log/munged.out" 2>&1 || skip "munged did not start: $(tail -n 3 "$dir/log/munged.out" | tr '\n' ' ')"
    cp /run/munge/munged.pid "$dir/munged.pid" 2>/dev/null
    for _ in $(seq 1 30); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || skip "munge credentials do not round-trip (munge -n | unmunge)"
  fi

  local ctld_port slurmd_port
  ctld_port=$(free_port 16817)
  slurmd_port=$(free_port $((ctld_port + 1)))
  cat >"$dir/slurm.conf" <<CONF
ClusterName=milkit-test
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
AuthType=auth/munge
MpiDefault=none
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  # -c: a clean start, no jobs carried over from an earlier test's state directory.
  /usr/sbin/slurmctld -c -f "$SLURM_CONF" >"$dir/log/slurmctld.out" 2>&1 || skip "slurmctld did not start: $(tail -n 3 "$dir/log/slurmctld.out" "$dir/log/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
  /usr/sbin/slurmd -f "$SLURM_CONF" >"$dir/log/slurmd.out" 2>&1 || skip "slurmd did not start: $(tail -n 3 "$dir/log/slurmd.out" "$dir/log/slurmd.log" 2>/dev/null | tr '\n' ' ')"
  local state=""
  for _ in $(seq 1 100); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1)
    [[ "$state" == idle* || "$state" == mixed* ]] && break
    sleep 0.2
  done
  [[ "$state" == idle* || "$state" == mixed* ]] || skip "node did not become idle within 20 s (sinfo says '${state:-nothing}'; logs in $dir/log)"
  echo "SLURM_CONF=$SLURM_CONF"
}

stop() {
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munged.pid"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
