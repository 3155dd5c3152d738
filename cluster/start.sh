#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine, for tests and CI.
#
# Runs as root without systemd: munged, MariaDB, slurmdbd (so that `sacct` works),
# slurmctld and slurmd, with one partition and two fake GPUs declared as a gres.
# Installs the Debian packages when they are missing. Idempotent: a daemon that
# already answers is left alone. Every daemon it starts is recorded in
# $STATE_DIR/started, which cluster/stop.sh reads to stop exactly those.
#
# Settings (environment variables):
#   SLURM_PARTITION  partition name (default: local)
#   SLURM_GPUS       number of fake GPUs on the node (default: 2)
#   SLURM_CPUS       CPUs the node offers to jobs (default: 8, or more if the machine has
#                    more); more than the machine has lets sleepy test jobs run side by side
#   SLURM_MAX_ARRAY_SIZE  the cluster's MaxArraySize (default: 1001); a change restarts
#                    the daemons, since slurmctld reads it only when it starts
#   CRED_EXPIRE_S    credential lifetime; SLURM also waits this long before a
#                    requeued job may start again (default: 10; SLURM's own is 120)
#   WAIT_S           how long to wait for each daemon (default: 60)
set -euo pipefail

PARTITION="${SLURM_PARTITION:-local}"
GPUS="${SLURM_GPUS:-2}"
CPUS="${SLURM_CPUS:-8}"
MAX_ARRAY_SIZE="${SLURM_MAX_ARRAY_SIZE:-1001}"
CRED_EXPIRE_S="${CRED_EXPIRE_S:-10}"
WAIT_S="${WAIT_S:-60}"
CLUSTER=flooding
CONF_DIR=/etc/slurm
STATE_DIR=/run/flooding-slurm
LOG_DIR=/var/log/slurm
SPOOL_DIR=/var/lib/slurm
MARKER="# Written by flooding cluster/start.sh"
DB_PASSWORD=flooding-local-slurmdbd

say() { echo "[cluster/start] $*"; }
die() { echo "[cluster/start] error: $*" >&2; exit 1; }

# Retries "$@" once a second until it succeeds or WAIT_S seconds have passed.
wait_for() {
    local what="$1"; shift
    local i
    for ((i = 0; i < WAIT_S; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    die "$what did not come up within ${WAIT_S}s (logs in $LOG_DIR and /var/log/mysql)"
}

record_started() { echo "$1" >>"$STATE_DIR/started"; }

[[ $EUID -eq 0 ]] || die "must run as root (it starts system daemons)"
mkdir -p "$STATE_DIR" "$LOG_DIR" "$SPOOL_DIR/slurmctld" "$SPOOL_DIR/slurmd" "$CONF_DIR"

# --- packages ---------------------------------------------------------------
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
for pair in slurmctld:slurm-wlm slurmd:slurm-wlm sbatch:slurm-wlm slurmdbd:slurmdbd \
    munged:munge mariadbd:mariadb-server; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
    say "installing missing packages: $(printf '%s\n' "${missing[@]}" | sort -u | xargs)"
    export DEBIAN_FRONTEND=noninteractive
    # Keep the packages' install scripts from starting the daemons themselves (there is
    # no init system to do it properly): this script starts them below.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm slurmdbd munge mariadb-server \
        >/dev/null
    if ((created_policy)); then
        rm -f "$policy"
        trap - EXIT
    fi
else
    say "packages present: slurm-wlm, slurmdbd, munge, mariadb-server"
fi

# --- munge ------------------------------------------------------------------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running"
else
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=128 count=1 status=none
    fi
    chown -R munge:munge /etc/munge
    chmod 700 /etc/munge
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 755 /run/munge
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged --force
    record_started munged
    wait_for munged bash -c "munge -n | unmunge"
fi

# --- MariaDB (slurmdbd's storage) -------------------------------------------
if mysqladmin ping >/dev/null 2>&1; then
    say "MariaDB already running"
else
    mkdir -p /run/mysqld /var/log/mysql
    chown mysql:mysql /run/mysqld /var/log/mysql
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        say "initialising the MariaDB data directory"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    say "starting MariaDB"
    setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
        >>/var/log/mysql/error.log 2>&1 </dev/null &
    record_started mariadb
    wait_for MariaDB mysqladmin ping
fi
mysql -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# --- configuration ----------------------------------------------------------
# Never overwrite a configuration this script did not write: that would be a real site.
for f in slurm.conf gres.conf slurmdbd.conf; do
    if [[ -e "$CONF_DIR/$f" ]] && ! grep -qF "$MARKER" "$CONF_DIR/$f"; then
        die "$CONF_DIR/$f exists and was not written by this script; refusing to touch it"
    fi
done
# Node name and memory come from slurmd itself; the CPU count may exceed the machine's
# (SlurmdParameters=config_overrides keeps slurmd from draining the node for it).
hardware="$(slurmd -C | head -n 1)"
node="$(sed -E 's/^NodeName=([^ ]+).*/\1/' <<<"$hardware")"
memory="$(sed -E 's/.*RealMemory=([0-9]+).*/\1/' <<<"$hardware")"
real_cpus="$(sed -E 's/.*CPUs=([0-9]+).*/\1/' <<<"$hardware")"
((CPUS >= real_cpus)) || CPUS="$real_cpus"
devices=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty)
((GPUS <= ${#devices[@]})) || die "at most ${#devices[@]} fake GPUs"

write_if_changed() {  # path, mode; content on stdin
    local tmp
    tmp="$(mktemp)"
    cat >"$tmp"
    if [[ -e "$1" ]] && cmp -s "$tmp" "$1"; then
        rm -f "$tmp"
        return 1
    fi
    install -m "$2" "$tmp" "$1"
    rm -f "$tmp"
    say "wrote $1"
}

changed=0
write_if_changed "$CONF_DIR/slurm.conf" 644 <<CONF && changed=1
$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# SLURM holds a requeued job for the credential lifetime before it may start again.
AuthInfo=cred_expire=$CRED_EXPIRE_S
StateSaveLocation=$SPOOL_DIR/slurmctld
SlurmdSpoolDir=$SPOOL_DIR/slurmd
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: the daemons run inside containers and VMs without systemd.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
# Sample each job's memory every second (default 30 s): short test jobs get a MaxRSS.
JobAcctGatherFrequency=task=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
# Record GPUs in the accounting, so that sacct's AllocTRES shows gres/gpu.
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=10
# A tiny cluster can afford to schedule every few seconds (defaults: 60 and 30).
SchedulerParameters=sched_interval=2,bf_interval=2
MinJobAge=600
MaxArraySize=$MAX_ARRAY_SIZE
SlurmdParameters=config_overrides
NodeName=$node CPUs=$CPUS RealMemory=$memory Gres=gpu:$GPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

{
    echo "$MARKER"
    echo "# Fake GPUs: slurmd drops a GPU without a device file, so each names a harmless one."
    for ((i = 0; i < GPUS; i++)); do echo "NodeName=$node Name=gpu File=${devices[i]}"; done
} | write_if_changed "$CONF_DIR/gres.conf" 644 && changed=1

write_if_changed "$CONF_DIR/slurmdbd.conf" 600 <<CONF && changed=1
$MARKER
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE_DIR/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
CONF

running() { [[ -s "$STATE_DIR/$1.pid" ]] && kill -0 "$(cat "$STATE_DIR/$1.pid")" 2>/dev/null; }

if ((changed)); then
    # New settings only take effect after a restart of the daemons that read them.
    for d in slurmd slurmctld slurmdbd; do
        if running "$d"; then
            pid="$(cat "$STATE_DIR/$d.pid")"
            say "configuration changed: stopping $d (pid $pid) to restart it"
            kill "$pid"
            wait_for "$d to stop" bash -c "! kill -0 $pid"
        fi
    done
fi

# --- slurmdbd ---------------------------------------------------------------
if running slurmdbd; then
    say "slurmdbd already running"
else
    say "starting slurmdbd"
    slurmdbd
    record_started slurmdbd
fi
wait_for slurmdbd sacctmgr -n show cluster
if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
    say "registering cluster $CLUSTER in the accounting database"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi

# --- slurmctld and slurmd ---------------------------------------------------
if running slurmctld; then
    say "slurmctld already running"
else
    say "starting slurmctld"
    slurmctld
    record_started slurmctld
fi
wait_for slurmctld scontrol ping

if running slurmd; then
    say "slurmd already running"
else
    say "starting slurmd"
    slurmd
    record_started slurmd
fi

node_state() { sinfo -h -n "$node" -o %T | head -n 1; }
for ((i = 0; i < WAIT_S; i++)); do
    state="$(node_state)"
    case "$state" in
        idle | mixed | allocated) break ;;
        drain* | down*)
            say "node $node is $state: resuming it"
            scontrol update nodename="$node" state=resume || true ;;
    esac
    sleep 1
done
state="$(node_state)"
[[ "$state" =~ ^(idle|mixed|allocated)$ ]] || die "node $node is '$state', not idle ($LOG_DIR)"
wait_for sacct sacct -n -X

say "ready: cluster $CLUSTER, partition $PARTITION, node $node ($state), $CPUS CPUs, $GPUS fake GPUs"
sinfo -o "%P %D %T %C %G"
