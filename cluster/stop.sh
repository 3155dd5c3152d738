#!/usr/bin/env bash
# Stop the single-node SLURM cluster that cluster/start.sh started.
#
# Stops only the daemons start.sh recorded as started by it (newest first), after
# cancelling every job still in the queue. Leaves configuration and accounting data
# in place, so that a later start.sh is quick.
set -euo pipefail

STATE_DIR=/run/flooding-slurm
WAIT_S="${WAIT_S:-60}"
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "[cluster/stop] $*"; }

[[ $EUID -eq 0 ]] || { echo "[cluster/stop] error: must run as root" >&2; exit 1; }
if [[ ! -s "$STATE_DIR/started" ]]; then
    say "nothing to stop: no daemon was started by cluster/start.sh"
    exit 0
fi

if scontrol ping >/dev/null 2>&1 && [[ -n "$(squeue -h -o %i)" ]]; then
    say "cancelling queued jobs: $(squeue -h -o %i | xargs)"
    squeue -h -o %i | xargs -r scancel || true
fi

pid_of() {
    case "$1" in
        munged) cat /run/munge/munged.pid 2>/dev/null ;;
        mariadb) cat /run/mysqld/mysqld.pid 2>/dev/null ;;
        *) cat "$STATE_DIR/$1.pid" 2>/dev/null ;;
    esac
}

# Newest first: slurmd before slurmctld before slurmdbd before MariaDB before munged.
tac "$STATE_DIR/started" | awk '!seen[$0]++' | while read -r daemon; do
    pid="$(pid_of "$daemon" || true)"
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
        say "$daemon is not running"
        continue
    fi
    say "stopping $daemon (pid $pid)"
    kill "$pid"
    for ((i = 0; i < WAIT_S; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$daemon did not stop within ${WAIT_S}s: killing it"
        kill -9 "$pid"
    fi
done
rm -f "$STATE_DIR/started"
say "stopped"
