#!/usr/bin/env bash
# Single-node Slurm on this host, for testing the SLURM (submitit) backend against a real Slurm.
#
#   scripts/slurm_local.sh           install (if needed), configure, start; wait until the node is idle
#   scripts/slurm_local.sh --stop    stop slurmd, slurmctld, slurmdbd, mariadbd, munged
#   scripts/slurm_local.sh --status  print daemon pids and `sinfo`
#
# Idempotent: when the daemons run and the generated config is unchanged it returns at once (~0.1 s).
# Needs root and apt-get (Debian 12 tested). No systemd: the daemons are started directly.
# Env:
#   SLURM_LOCAL_ACCOUNTING=dbd|none  dbd (default): slurmdbd + MariaDB, so `sacct` works (submitit
#                                    polls sacct). none: no database; `sacct` fails, use `squeue -t all`.
#   SLURM_LOCAL_GPUS=0               N>0 declares N fake GPUs (GRES gpu, no hardware), so jobs with
#                                    --gpus-per-node=1 are accepted; Slurm sets CUDA_VISIBLE_DEVICES per job.
#   SLURM_LOCAL_WAIT_S=60            how long to wait for the node to become idle.
# Config: /etc/slurm/slurm.conf (+ slurmdbd.conf). Logs: /var/log/slurm/. Notes: docs/slurm-local-notes.md
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
DBD_CONF=$CONF_DIR/slurmdbd.conf
LOG_DIR=/var/log/slurm
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
DBD_PID=/run/slurmdbd.pid
DB_PID=/run/mysqld/mysqld.pid
MUNGE_KEY=/etc/munge/munge.key
MUNGE_PID=/run/munge/munged.pid
CLUSTER=localcluster
ACCT=${SLURM_LOCAL_ACCOUNTING:-dbd}
WAIT_S=${SLURM_LOCAL_WAIT_S:-60}
GPUS=${SLURM_LOCAL_GPUS:-0}
GRES_CONF=$CONF_DIR/gres.conf
UP_STATES='^(idle|mixed|allocated|completing)$'

die() { echo "slurm_local: $*" >&2; exit 1; }
trap 'echo "slurm_local: failed (line $LINENO: $BASH_COMMAND)" >&2' ERR

proc_alive() { # pid -> 0 if running; a zombie counts as dead (PID 1 here reaps daemons slowly)
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [[ -n $s && ${s%% *} != Z ]]
}

pid_name() { # pidfile -> the daemon's command name
    case $1 in
        "$MUNGE_PID") echo munged ;; "$DB_PID") echo mariadbd ;; "$DBD_PID") echo slurmdbd ;;
        "$CTLD_PID") echo slurmctld ;; "$SLURMD_PID") echo slurmd ;;
    esac
}

pid_alive() { # pidfile -> 0 if the daemon named in it is alive (and the pid was not reused)
    local p
    [[ -s $1 ]] || return 1
    p=$(<"$1")
    [[ $p =~ ^[0-9]+$ ]] && proc_alive "$p" && [[ $(cat "/proc/$p/comm" 2>/dev/null) == "$(pid_name "$1")" ]]
}

stop_pidfile() { # pidfile name [seconds before SIGKILL]
    local p i
    pid_alive "$1" || { rm -f "$1"; return 0; }
    p=$(<"$1")
    kill "$p" 2>/dev/null || true
    for (( i = 0; i < ${3:-5} * 10; i++ )); do proc_alive "$p" || break; sleep 0.1; done
    if proc_alive "$p"; then kill -9 "$p" 2>/dev/null || true; fi
    rm -f "$1"
    echo "slurm_local: stopped $2 (pid $p)"
}

wait_for() { # seconds description command... : poll every 0.2 s
    local n=$(( $1 * 5 )) what=$2 i; shift 2
    for (( i = 0; i < n; i++ )); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    die "$what"
}

node_state() { sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -n1; }
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

HOST=$(hostname -s)

case "${1:-}" in
    --stop)
        stop_pidfile "$SLURMD_PID" slurmd
        stop_pidfile "$CTLD_PID" slurmctld
        stop_pidfile "$DBD_PID" slurmdbd
        stop_pidfile "$DB_PID" mariadbd 30
        stop_pidfile "$MUNGE_PID" munged
        exit 0 ;;
    --status)
        for f in "$MUNGE_PID" "$DB_PID" "$DBD_PID" "$CTLD_PID" "$SLURMD_PID"; do
            if pid_alive "$f"; then echo "$f: $(<"$f") running"; else echo "$f: not running"; fi
        done
        sinfo 2>&1 || true
        exit 0 ;;
    "") ;;
    *) die "unknown option '$1' (use --stop or --status)" ;;
esac

[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ $ACCT == dbd || $ACCT == none ]] || die "SLURM_LOCAL_ACCOUNTING must be dbd or none, not '$ACCT'"
[[ $GPUS =~ ^[0-9]+$ ]] || die "SLURM_LOCAL_GPUS must be a number, not '$GPUS'"

# ---- 1. packages -------------------------------------------------------------------------
pkgs=(slurm-wlm munge)
need=(slurmctld slurmd sbatch munged)
if [[ $ACCT == dbd ]]; then pkgs+=(slurmdbd mariadb-server); need+=(slurmdbd mariadbd); fi
missing=0
for c in "${need[@]}"; do command -v "$c" >/dev/null || [[ -x /usr/sbin/$c ]] || missing=1; done
if (( missing )); then
    export DEBIAN_FRONTEND=noninteractive
    apt_log=/tmp/slurm_local_apt.log
    if ! apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >"$apt_log" 2>&1; then
        apt-get update -qq >>"$apt_log" 2>&1 || true
        apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >>"$apt_log" 2>&1 \
            || die "apt-get install ${pkgs[*]} failed (see $apt_log)"
    fi
fi

# ---- 2. config ---------------------------------------------------------------------------
# slurmd -C prints the real topology: "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 ... RealMemory=24152"
hw=$(slurmd -C 2>/dev/null | head -n1) || true
[[ $hw == NodeName=* ]] || die "slurmd -C gave no node line: '$hw'"
field() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
cpus=$(field CPUs); boards=$(field Boards); spb=$(field SocketsPerBoard)
cps=$(field CoresPerSocket); tpc=$(field ThreadsPerCore); mem=$(field RealMemory)
[[ -n $cpus && -n $mem ]] || die "could not parse slurmd -C: '$hw'"
# leave ~5 % (at least 512 MB) below what slurmd sees, so the node is never drained for low memory
reserve=$(( mem / 20 )); (( reserve < 512 )) && reserve=512
realmem=$(( mem - reserve ))
# jobs without --mem get DefMemPerCPU, not the whole node (which would serialise all jobs)
defmem=$(( realmem / cpus / 4 )); (( defmem > 1024 )) && defmem=1024

if [[ $ACCT == dbd ]]; then
    acct_conf="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none"
else
    acct_conf="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# finished jobs are appended here (sacct -c reads it, but mangles array jobs)
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log"
fi

gres_types=""; node_gres=""; new_gres_conf=""
if (( GPUS > 0 )); then
    gres_types=$'GresTypes=gpu\n'
    node_gres="Gres=gpu:$GPUS "
    # slurmd only counts GPUs that have a character device: /dev/null clones (c 1 3) stand in for them
    gpu_dir=$SPOOL_DIR/fakegpu
    files=$gpu_dir/gpu0; (( GPUS > 1 )) && files="$gpu_dir/gpu[0-$(( GPUS - 1 ))]"
    new_gres_conf="# Generated by scripts/slurm_local.sh: $GPUS fake GPUs (no hardware; /dev/null clones)
AutoDetect=off
NodeName=$HOST Name=gpu File=$files"
fi

new_conf=$(cat <<EOF
# Generated by scripts/slurm_local.sh (single-node test cluster). Edits are overwritten.
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job waits cred_expire+1 s before it may start again (default 120 s)
AuthInfo=cred_expire=10
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# scheduling: start jobs that became eligible (requeue, --begin, array throttle) within ~5 s, not 60 s
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$defmem
# requeue (scontrol requeue, submitit checkpoint/requeue) and time limits
JobRequeue=1
KillWait=10
OverTimeLimit=0
InactiveLimit=0
# keep finished jobs visible to "squeue -t all" / "scontrol show job" for 1 h
MinJobAge=3600
# accounting ($ACCT)
$acct_conf
# node and partition
${gres_types}NodeName=$HOST CPUs=$cpus Boards=${boards:-1} SocketsPerBoard=${spb:-1} CoresPerSocket=${cps:-$cpus} ThreadsPerCore=${tpc:-1} RealMemory=$realmem ${node_gres}State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
)

new_dbd_conf=$(cat <<EOF
# Generated by scripts/slurm_local.sh. MariaDB root is reached through its unix socket (unix_socket auth).
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$DBD_PID
EOF
)

write_if_changed() { # file content -> 0 if it was (re)written
    if [[ -f $1 && "$(<"$1")" == "$2" ]]; then return 1; fi
    mkdir -p "$(dirname "$1")"
    printf '%s\n' "$2" >"$1.tmp" && chmod 0600 "$1.tmp" && mv "$1.tmp" "$1"
    return 0
}
conf_changed=0; dbd_changed=0
write_if_changed "$CONF" "$new_conf" && { conf_changed=1; chmod 0644 "$CONF"; }
if (( GPUS > 0 )); then
    write_if_changed "$GRES_CONF" "$new_gres_conf" && { conf_changed=1; chmod 0644 "$GRES_CONF"; }
elif [[ -f $GRES_CONF ]]; then
    rm -f "$GRES_CONF"; conf_changed=1
fi
if [[ $ACCT == dbd ]]; then write_if_changed "$DBD_CONF" "$new_dbd_conf" && dbd_changed=1; fi

# ---- fast path: everything already up -----------------------------------------------------
if (( ! conf_changed && ! dbd_changed )) && pid_alive "$MUNGE_PID" && pid_alive "$CTLD_PID" \
   && pid_alive "$SLURMD_PID" && { [[ $ACCT == none ]] || { pid_alive "$DB_PID" && pid_alive "$DBD_PID"; }; }; then
    st=$(node_state)
    if [[ $st =~ $UP_STATES ]]; then
        echo "slurm_local: already running, node $HOST $st"
        exit 0
    fi
fi

mkdir -p "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR"
if (( GPUS > 0 )); then
    mkdir -p "$gpu_dir"
    for (( i = 0; i < GPUS; i++ )); do
        [[ -c $gpu_dir/gpu$i ]] || { rm -f "$gpu_dir/gpu$i"; mknod "$gpu_dir/gpu$i" c 1 3; } \
            || die "mknod $gpu_dir/gpu$i failed (fake GPUs need character devices)"
    done
fi

# ---- 3. munge ----------------------------------------------------------------------------
key_created=0
if [[ ! -s $MUNGE_KEY ]]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile="$MUNGE_KEY" >/dev/null 2>&1 || die "mungekey --create failed"
    else
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
    key_created=1
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge "$MUNGE_KEY" /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0400 "$MUNGE_KEY"
chmod 0755 /run/munge
if (( key_created )); then stop_pidfile "$MUNGE_PID" munged >/dev/null; fi
if ! pid_alive "$MUNGE_PID"; then
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" >/dev/null 2>&1 \
        || die "munged failed to start (see /var/log/munge/munged.log)"
fi
wait_for 10 "munge round trip failed (see /var/log/munge/munged.log)" munge_ok

# ---- 4. MariaDB + slurmdbd (ACCT=dbd) ------------------------------------------------------
if [[ $ACCT == dbd ]]; then
    if ! pid_alive "$DB_PID"; then
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql >/dev/null 2>&1 \
            || die "mariadb-install-db failed"
        # unix socket only; slurmdbd and the mariadb client connect through /run/mysqld/mysqld.sock
        ( setsid /usr/sbin/mariadbd --user=mysql --skip-networking --pid-file="$DB_PID" \
              --innodb-lock-wait-timeout=900 </dev/null >>"$LOG_DIR/mariadb.log" 2>&1 & )
        wait_for 30 "mariadbd did not start (see $LOG_DIR/mariadb.log)" mariadb-admin ping
    fi
    if (( dbd_changed )); then stop_pidfile "$DBD_PID" slurmdbd >/dev/null; fi
    if ! pid_alive "$DBD_PID"; then
        slurmdbd >/dev/null 2>&1 || die "slurmdbd failed to start (see $LOG_DIR/slurmdbd.log)"
    fi
    wait_for 30 "slurmdbd does not answer (see $LOG_DIR/slurmdbd.log)" sacctmgr -n list cluster
    if ! sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || die "sacctmgr add cluster $CLUSTER failed"
    fi
else
    stop_pidfile "$DBD_PID" slurmdbd >/dev/null
    stop_pidfile "$DB_PID" mariadbd 30 >/dev/null
fi

# ---- 5. slurmctld, slurmd ------------------------------------------------------------------
if (( conf_changed )); then
    # new config: restart what runs (job state in $STATE_DIR is kept, running jobs survive)
    stop_pidfile "$SLURMD_PID" slurmd >/dev/null
    stop_pidfile "$CTLD_PID" slurmctld >/dev/null
fi
if ! pid_alive "$CTLD_PID"; then
    slurmctld >/dev/null 2>&1 || die "slurmctld failed to start (see $LOG_DIR/slurmctld.log)"
fi
wait_for 30 "slurmctld does not answer (see $LOG_DIR/slurmctld.log)" bash -c 'scontrol ping | grep -q UP'
if ! pid_alive "$SLURMD_PID"; then
    slurmd >/dev/null 2>&1 || die "slurmd failed to start (see $LOG_DIR/slurmd.log)"
fi

# ---- 6. wait for the node ------------------------------------------------------------------
deadline=$(( SECONDS + WAIT_S ))
resumed=0
while :; do
    st=$(node_state)
    [[ $st =~ $UP_STATES ]] && break
    # a node left down/drained by an earlier unclean stop: resume it once
    if (( ! resumed )) && [[ $st =~ ^(down|drain|inval) ]]; then
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        resumed=1
    fi
    (( SECONDS < deadline )) || die "node $HOST not idle after ${WAIT_S}s (state '${st:-?}', see $LOG_DIR/slurmd.log)"
    sleep 0.5
done
echo "slurm_local: up, node $HOST $st ($cpus CPUs, RealMemory=$realmem MB, partition debug, accounting $ACCT, $GPUS fake GPUs)"
