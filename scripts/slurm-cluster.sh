#!/usr/bin/env bash
# A real one-node Slurm cluster on loopback, from Debian's packages (slurm-wlm, munge), for labd's tests and for
# trying `executor: slurm` by hand. No systemd, nothing written outside DIR (beyond installing the packages):
#
#   scripts/slurm-cluster.sh start DIR   # installs slurm-wlm and munge if missing (root), starts munged,
#                                        # slurmctld and slurmd in DIR; prints the environment to use it
#   scripts/slurm-cluster.sh stop DIR    # stops them (by their pid files)
#   eval "$(scripts/slurm-cluster.sh env DIR)"   # SLURM_CONF for sbatch, squeue, sacct, scancel
#   scripts/slurm-cluster.sh stop-controller DIR   # only slurmctld (the cluster's controller unreachable)
#   scripts/slurm-cluster.sh start-controller DIR  # it again, with the same configuration and state
#
# One node, `localhost` at 127.0.0.1, with this machine's CPUs and memory; partition `debug` (default); free
# ports; munge with its own key and socket; no accounting storage (jobs finished are listed by jobcomp/filetxt
# in DIR/jobcomp.txt). slurmctld listens on all addresses: do not run this on a machine open to a network.
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop|env|stop-controller|start-controller DIR" >&2
  exit 2
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
conf="$dir/slurm.conf"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

stop_pid() { # pid file
  if [ -f "$1" ]; then
    local pid
    pid="$(cat "$1")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$1"
  fi
}

case "$cmd" in
  env)
    echo "export SLURM_CONF=$conf"
    ;;
  stop-controller)
    stop_pid "$dir/slurmctld.pid"
    ;;
  start-controller)
    SLURM_CONF="$conf" slurmctld -f "$conf"
    for _ in $(seq 100); do
      SLURM_CONF="$conf" sinfo -h >/dev/null 2>&1 && exit 0
      sleep 0.1
    done
    echo "slurmctld did not come back; log in $dir/slurmctld.log" >&2
    exit 1
    ;;
  stop)
    stop_pid "$dir/slurmd.pid"
    stop_pid "$dir/slurmctld.pid"
    stop_pid "$dir/munged.pid"
    ;;
  start)
    if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
      else
        echo "slurm-wlm and munge are not installed (apt-get install slurm-wlm munge, as root)" >&2
        exit 1
      fi
    fi
    "$0" stop "$dir"
    mkdir -p "$dir/spool/ctld" "$dir/spool/d" "$dir/munge"
    chmod 700 "$dir/munge"
    # munge: a key of its own and a socket in DIR.
    if [ ! -f "$dir/munge/key" ]; then
      dd if=/dev/urandom of="$dir/munge/key" bs=1024 count=1 status=none
      chmod 400 "$dir/munge/key"
    fi
    munged --force --socket="$dir/munge/socket" --key-file="$dir/munge/key" \
      --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/seed"
    cpus="$(nproc)"
    mem_mib="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
    cat > "$conf" <<EOF
ClusterName=labd-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=$(id -un)
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
CredType=cred/munge
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
MinJobAge=600
DefMemPerCPU=256
ReturnToService=2
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$conf"
    slurmctld -c -i -f "$conf"
    slurmd -N localhost -f "$conf"
    for _ in $(seq 100); do
      if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
        echo "export SLURM_CONF=$conf"
        exit 0
      fi
      sleep 0.1
    done
    echo "the cluster did not come up; logs in $dir" >&2
    tail -n 5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
    exit 1
    ;;
  *)
    echo "usage: $0 start|stop|env|stop-controller|start-controller DIR" >&2
    exit 2
    ;;
esac
