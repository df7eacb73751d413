#!/usr/bin/env bash
# Start one Ray node of the allocation in the foreground; ray-cluster.sbatch runs it with srun, once per node.
#   ray-node.sh head HEAD_IP PORT    the head, bound to HEAD_IP (the node's address inside the allocation)
#   ray-node.sh worker HEAD_IP:PORT  a worker joining that head
# CPUs and GPUs are this Slurm step's own (read here, on the node), so Ray uses what Slurm gave and no more.
# Token auth (RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH) comes from the environment srun passes on.
set -euo pipefail
role=${1:-} target=${2:-}
args=(
  --num-cpus="${SLURM_CPUS_PER_TASK:?run me with srun --cpus-per-task}"
  --num-gpus="${SLURM_GPUS_ON_NODE:-0}"
  --temp-dir="/tmp/ray-${SLURM_JOB_ID}"
  --disable-usage-stats
  --block
)
case $role in
  head)
    exec ray start --head --node-ip-address="$target" --port="${3:?port}" --include-dashboard=false "${args[@]}"
    ;;
  worker) exec ray start --address="$target" "${args[@]}" ;;
  *) echo "ray-node.sh: first argument must be head or worker, got '$role'" >&2; exit 2 ;;
esac
