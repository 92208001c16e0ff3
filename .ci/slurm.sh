#!/usr/bin/env bash
# A throwaway single-node Slurm cluster for the test lane (Debian/Ubuntu, root, no systemd or cgroups needed).
#
#   .ci/slurm.sh install     apt-get Debian's Slurm (+ slurmdbd and MariaDB when ACCOUNTING=1); daemons not started
#   .ci/slurm.sh start       start munged, [MariaDB, slurmdbd,] slurmctld, slurmd; wait until the node is idle
#   .ci/slurm.sh stop        cancel every job, stop each daemon this script started, by PID; remove the state
#   .ci/slurm.sh env         print `export SLURM_CONF=...` for clients (sbatch, squeue, submitit, Snakemake)
#
# Everything lives under $SLURM_CI_DIR (config, keys, sockets, logs, database), and non-default ports keep it apart
# from a MUNGE or MariaDB the machine may already run. Clients find the cluster through SLURM_CONF, and through the
# default /etc/slurm/slurm.conf, made a link to our config: Snakemake's Slurm job-step plugin strips SLURM_* from
# the environment of the srun it starts inside a job. `start` refuses to replace a slurm.conf that is not that link.
# Measured facts behind the settings: /work/shared/notes/slurm-local-cluster.md.
set -euo pipefail

D=${SLURM_CI_DIR:-/tmp/slurm-ci}
ACCOUNTING=${ACCOUNTING:-1}
PORT=${SLURM_CI_PORT:-16817} # slurmctld; slurmd +1, slurmdbd +2, MariaDB +3
CLUSTER=ci
PARTITION=debug
export SLURM_CONF="$D/etc/slurm.conf"
DEFAULT_CONF=/etc/slurm/slurm.conf

log() { echo "slurm.sh: $*" >&2; }

wait_for() { # seconds, command...: retry the command until it succeeds
  local limit=$1
  shift
  for _ in $(seq $((limit * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "timed out after ${limit}s waiting for: $*"
  return 1
}

install_packages() {
  [ "$(id -u)" = 0 ] || {
    log "install needs root (apt-get)"
    exit 1
  }
  local pkgs="slurmctld slurmd slurm-client munge"
  [ "$ACCOUNTING" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  # services must not start during the install: there is no systemd, and `start` runs the daemons by hand
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
}

write_slurm_conf() {
  local host cpus mem_mb accounting
  host=$(hostname -s)
  cpus=$(nproc)
  mem_mb=$(($(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) * 85 / 100))
  accounting="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
  [ "$ACCOUNTING" = 1 ] && accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT + 2))
AccountingStoragePass=$D/munge/munge.socket
JobAcctGatherType=jobacct_gather/linux"
  # cred_expire: a requeued job waits cred_expire + 1 s before it may start again (default 120 s)
  cat >"$SLURM_CONF" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket,cred_expire=20
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation=$D/ctld
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
$accounting
JobCompType=jobcomp/none
MinJobAge=300
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  install -d -o munge -g munge -m 0755 "$D/munge"
  mungekey --create --keyfile="$D/munge/munge.key" 2>/dev/null
  chown munge:munge "$D/munge/munge.key"
  chmod 0400 "$D/munge/munge.key"
  runuser -u munge -- /usr/sbin/munged --socket="$D/munge/munge.socket" --key-file="$D/munge/munge.key" \
    --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/munged.seed"
  wait_for 10 sh -c "munge -S '$D/munge/munge.socket' -n | unmunge -S '$D/munge/munge.socket'"
}

start_accounting() {
  local port=$((PORT + 3)) sock="$D/mysql/mysqld.sock"
  install -d -o mysql -g mysql "$D/mysql" "$D/mysql/data"
  mariadb-install-db --user=mysql --datadir="$D/mysql/data" >"$D/log/mariadb-install.log" 2>&1
  setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$D/mysql/data" --socket="$sock" \
    --bind-address=127.0.0.1 --port="$port" --skip-name-resolve --pid-file="$D/mysql/mariadb.pid" \
    --log-error="$D/log/mariadb.log" </dev/null >/dev/null 2>&1 &
  wait_for 30 mariadb --no-defaults --socket="$sock" -e 'select 1'
  mariadb --no-defaults --socket="$sock" -e "CREATE DATABASE slurm_acct_db;
    CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-ci';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
  # slurmdbd reads slurmdbd.conf next to slurm.conf and refuses it unless it is private to SlurmUser
  install -m 0600 /dev/null "$D/etc/slurmdbd.conf"
  cat >"$D/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT + 2))
SlurmUser=root
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$port
StorageUser=slurm
StoragePass=slurm-ci
StorageLoc=slurm_acct_db
EOF
  slurmdbd
  wait_for 60 sacctmgr -n list cluster
  # the cluster must be known to slurmdbd before slurmctld registers, or accounting stays empty
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
}

start() {
  [ "$(id -u)" = 0 ] || {
    log "start needs root (daemons run as root and munge)"
    exit 1
  }
  command -v slurmctld >/dev/null || {
    log "Slurm is not installed: run '$0 install' first"
    exit 1
  }
  if [ -e "$DEFAULT_CONF" ] && [ "$(readlink "$DEFAULT_CONF")" != "$SLURM_CONF" ]; then
    log "$DEFAULT_CONF exists and is not this lane's: this machine has its own Slurm, use that one"
    exit 1
  fi
  stop_daemons # a previous run of this lane that was killed before its stop
  rm -rf "$D"
  mkdir -p "$D"/{etc,ctld,spool,log,run}
  write_slurm_conf
  mkdir -p "$(dirname "$DEFAULT_CONF")"
  ln -sfn "$SLURM_CONF" "$DEFAULT_CONF"
  start_munge
  [ "$ACCOUNTING" = 1 ] && start_accounting
  slurmctld
  slurmd
  if ! wait_for 60 sh -c "sinfo -h -o %T | grep -qx idle"; then
    sinfo -N -l >&2 || true
    tail -n 20 "$D"/log/*.log >&2 || true
    exit 1
  fi
  log "cluster '$CLUSTER' up (partition $PARTITION, accounting=$ACCOUNTING, config $SLURM_CONF linked from $DEFAULT_CONF)"
}

stop_daemons() {
  local f p
  if [ -s "$SLURM_CONF" ] && scontrol ping >/dev/null 2>&1; then
    scancel --full --partition="$PARTITION" 2>/dev/null || true
    wait_for 30 sh -c '[ -z "$(squeue -h)" ]' || true
  fi
  # reverse order of start; each by the PID it wrote, SIGKILL after 30 s
  for f in "$D/run/slurmd.pid" "$D/run/slurmctld.pid" "$D/run/slurmdbd.pid" "$D/mysql/mariadb.pid" \
    "$D/munge/munged.pid"; do
    [ -s "$f" ] || continue
    p=$(cat "$f")
    kill "$p" 2>/dev/null || continue
    for _ in $(seq 150); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$p" 2>/dev/null; then
      log "PID $p ($f) ignored SIGTERM: killing it"
      kill -9 "$p" 2>/dev/null || true
    fi
  done
}

stop() {
  stop_daemons
  [ "$(readlink "$DEFAULT_CONF" 2>/dev/null)" = "$SLURM_CONF" ] && rm -f "$DEFAULT_CONF"
  rm -rf "$D"
}

case "${1:-}" in
install) install_packages ;;
start) start ;;
stop) stop ;;
env) echo "export SLURM_CONF=$SLURM_CONF" ;;
*)
  echo "usage: $0 install|start|stop|env   (env: SLURM_CI_DIR, ACCOUNTING=1|0, SLURM_CI_PORT)" >&2
  exit 2
  ;;
esac
