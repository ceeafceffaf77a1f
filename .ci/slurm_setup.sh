#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for tests/pipeline/test_slurm_real.py: munge,
# slurmctld and slurmd from the distribution's packages, one node (this host) in two partitions,
# `cpu` and `gpu`, the partitions profiles/slurm names. Needs root or sudo; without them it prints
# one line saying so and exits 0, and the test skips. A machine whose /etc/slurm/slurm.conf was not
# written by this script is left alone: its own cluster is used if `sinfo` answers.
#
# The node declares what profiles/slurm asks of one job at most (8 CPUs, 64,000 MB, one GPU), and
# slurmd is told to trust the declaration (SlurmdParameters=config_overrides), so the profile's
# requests are scheduled unchanged on a small machine. No cgroups (they fail in many containers):
# nothing is enforced, jobs share the real cores, and the test limits itself to two jobs at once.
# The GPU is a count-only GRES: `--gpus=1` is granted and no device is handed to the job (the
# debug configuration trains on the CPU). No accounting database, so `sacct` has nothing to say:
# finished jobs stay visible to `squeue`/`scontrol` for MinJobAge seconds, and every finished job
# is written to the job-completion log (JobCompLoc).
set -euo pipefail

say() { echo ".ci/slurm_setup.sh: $*"; }
MARKER="# written by dreamer-pipeline .ci/slurm_setup.sh"
CONF=/etc/slurm/slurm.conf

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    say "skipped: installing and starting SLURM needs root or passwordless sudo (neither is available); the real-SLURM test will skip"
    exit 0
fi

if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    say "skipped: $CONF exists and was not written by this script; using that cluster as it is"
    exit 0
fi

PACKAGES=(munge slurmctld slurmd slurm-client)
if ! dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null; then
        say "skipped: no apt-get to install ${PACKAGES[*]}; the real-SLURM test will skip"
        exit 0
    fi
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi

NODE=$(hostname -s)
conf=$(mktemp)
cat >"$conf" <<EOF
$MARKER
ClusterName=dreamer-ci
SlurmctldHost=$NODE
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=900
MpiDefault=none
NodeName=$NODE CPUs=8 RealMemory=64000 Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
"${as_root[@]}" install -m 644 "$conf" "$CONF"
echo "NodeName=$NODE Name=gpu File=/dev/null" >"$conf"
"${as_root[@]}" install -m 644 "$conf" /etc/slurm/gres.conf
rm -f "$conf"

"${as_root[@]}" install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
"${as_root[@]}" install -d /var/spool/slurmd
"${as_root[@]}" install -d -o munge -g munge -m 0755 /run/munge

# Daemons are started directly: containers rarely run systemd. A rerun restarts them on the new
# configuration (the pid files are the paths set above), and slurmctld starts from a clean state
# (-c), so a node drained by an earlier try comes back.
pgrep -x munged >/dev/null || "${as_root[@]}" runuser -u munge -- /usr/sbin/munged
for daemon in slurmctld slurmd; do
    if [ -s "/run/$daemon.pid" ]; then
        "${as_root[@]}" kill "$(cat "/run/$daemon.pid")" 2>/dev/null || true
        sleep 1
    fi
done
"${as_root[@]}" /usr/sbin/slurmctld -c
"${as_root[@]}" /usr/sbin/slurmd

for _ in $(seq 30); do
    if sinfo -h -N -o "%T" 2>/dev/null | grep -qE "^(idle|mixed|allocated)"; then
        say "SLURM is up: $(sinfo -h -o '%P %D %T' | tr '\n' ' ')"
        exit 0
    fi
    sleep 1
done
say "SLURM did not come up within 30 s; the real-SLURM test will skip. Last log lines:"
"${as_root[@]}" tail -n 5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log || true
exit 0
