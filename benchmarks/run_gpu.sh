#!/usr/bin/env bash
# The issue-5 benchmark set on a GPU machine, one part per call (each part fits a 10-minute
# slot of the team's device tool):
#
#   bash benchmarks/run_gpu.sh step      # bench_step: one leaf, transformer-like, 1B params
#   bash benchmarks/run_gpu.sh small     # bench_step on 2000 small leaves
#   bash benchmarks/run_gpu.sh rest      # bench_train, bench_memory, bench_compile at 100/1000
#
# Results go to benchmarks/results/<bench>_<gpu>.md (and to $OUT when it is set), where <gpu>
# is the device kind, e.g. "h100".  JAX must not preallocate GPU memory: torch shares the card.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
gpu=$("$py" -c "import jax; d = jax.devices()[0]; assert d.platform == 'gpu', d; print(d.device_kind.split()[1].lower())")
dest=benchmarks/results
mkdir -p "$dest"
run() {  # run NAME COMMAND...: write results/NAME_<gpu>.md
    local name=$1; shift
    "$py" "$@" --out "$dest/${name}_${gpu}.md"
    if [ -n "${OUT:-}" ]; then cp "$dest/${name}_${gpu}.md" "$OUT/"; fi
}
case "${1:-}" in
    step)
        run step_one_leaf benchmarks/bench_step.py --case one_leaf --rounds 30
        run step_transformer benchmarks/bench_step.py --case transformer --rounds 30
        run step_billion benchmarks/bench_step.py --case billion --rounds 20 ;;
    small)
        run step_many_small benchmarks/bench_step.py --case many_small --rounds 30 ;;
    rest)
        run train benchmarks/bench_train.py
        run memory benchmarks/bench_memory.py
        run compile benchmarks/bench_compile.py --leaves 100,1000 ;;
    *)
        echo "usage: bash benchmarks/run_gpu.sh step|small|rest" >&2; exit 2 ;;
esac
