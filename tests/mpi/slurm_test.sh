#!/usr/bin/env bash
# The README's Slurm line, run for real: starts a one-node Slurm of its own
# (munged, slurmctld, slurmd from Debian's slurm-wlm and munge, as root, in a
# private folder with its own ports), runs
#   srun --mpi=pmix -N1 -n2 mathpool run --mpi CONFIG -o slurm.jsonl
# and checks the records equal a plain run's (less worker, seconds, node),
# each with a node. Stops and reaps every daemon it started, whatever happens.
#
# usage: slurm_test.sh MATHPOOL WORK_DIR
set -euo pipefail
mathpool=$(realpath "$1")
work=$2

fail() { echo "slurm_test: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "must run as root (CI does): slurmd and munged are started here"
for tool in munged mungekey slurmctld slurmd srun sinfo python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing; .ci/setup installs slurm-wlm and munge"
done

mkdir -p "$work"
dir=$(mktemp -d "$work/slurm.XXXXXX")
chmod 0711 "$dir"  # munged wants its socket's folders searchable by all
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$dir"/*.log; do echo "--- $log"; tail -n 20 "$log"; done >&2
  fi
  rm -rf "$dir"
  exit "$status"
}
trap cleanup EXIT

# Two free ports, for this Slurm only.
read -r ctld_port d_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
host=$(hostname -s)
cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -n1)

mkdir -m 0755 "$dir/munge"
mkdir "$dir/state" "$dir/spool"
mungekey --create --keyfile="$dir/munge.key"
munged --foreground --key-file="$dir/munge.key" --socket="$dir/munge/socket" --pid-file="$dir/munged.pid" \
  --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" >"$dir/munged.out.log" 2>&1 &
pids+=($!)

cat >"$dir/slurm.conf" <<EOF
ClusterName=mathpooltest
SlurmctldHost=$host
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=10 State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"

for _ in $(seq 50); do [ -S "$dir/munge/socket" ] && break; sleep 0.1; done
slurmctld -D -f "$SLURM_CONF" >"$dir/slurmctld.out.log" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$dir/slurmd.out.log" 2>&1 &
pids+=($!)
state=""
for _ in $(seq 100); do
  state=$(sinfo -h -o %t 2>/dev/null || true)
  [ "$state" = "idle" ] && break
  sleep 0.2
done
[ "$state" = "idle" ] || fail "the node did not come up (state '$state')"

# The pmix plugin is what Debian's Open MPI needs under srun.
srun --mpi=list 2>&1 | grep -q pmix || fail "this Slurm has no pmix MPI plugin"

# Registers of degrees 4 to 10 over GF(2), with labels: 1016 tasks.
cat >"$dir/sweep.yaml" <<EOF
pool: {workers: 2}
analyses:
  - name: registers
    analysis: lfsr.polynomial
    params: {field: 2}
    labels: [degree]
    sweep:
      degree: {range: [4, 11]}
      coefficients: {words: {alphabet: [0, 1], length: degree, prefix: [1]}}
EOF
"$mathpool" run "$dir/sweep.yaml" -o "$dir/plain.jsonl"
timeout 60 srun --mpi=pmix -N1 -n2 --overcommit "$mathpool" run --mpi "$dir/sweep.yaml" -o "$dir/slurm.jsonl" \
  || fail "srun --mpi=pmix ... mathpool run --mpi failed"

python3 - "$dir/plain.jsonl" "$dir/slurm.jsonl" <<'EOF'
import json, sys
def records(path, node):
    out = []
    for line in open(path):
        r = json.loads(line)
        if node and not r.get("node"):
            sys.exit(f"{path}: a record without a node: {line}")
        for key in ("worker", "seconds", "node"):
            r.pop(key, None)
        out.append(r)
    return out
plain, slurm = records(sys.argv[1], False), records(sys.argv[2], True)
if len(plain) != 1016 or plain != slurm:
    sys.exit(f"records differ: plain {len(plain)}, slurm {len(slurm)}")
print(f"slurm_test: {len(slurm)} records under srun --mpi=pmix equal the plain run's")
EOF
