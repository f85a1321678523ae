#!/usr/bin/env bash
# The full profile's grids and benchmarks on a GPU machine that has torch but no network
# (the device tool): MNIST comes as the four .gz IDX files in .gpu/mnist/ (git-ignored, carried),
# results go to results/full/ and figures/full/, and everything lands in $OUT/full.tgz.
# Usage (in the repository root): T=420 bash scripts/device_full_grids.sh
#   GRIDS='logreg gamma mlnn bettercnn' (which grids), T (seconds for the grids; a grid cut off
#   resumes on the next call), EXECUTOR (inprocess: tasks finish one by one), BENCH='step grid',
#   RULES=additive (only that rule), DEST / FIGS (results and figures folders),
#   STACKS='cnn' (tables of experiments/stacks_clipping.py to run after the grids; Fashion-MNIST
#   comes from .gpu/fashion-mnist/*.gz), STACK_WORKERS (worker processes, default 8),
#   STUDIES='fig1 family_sensitivity rivals asgc epsilon' (other drivers' full profiles, run
#   after the stacks within the same T; each resumes on the next call). HDREPRO_COMMIT: the commit
#   to record; pass it from the calling machine, whose tree is what runs (the device machine's
#   git has been seen to report an older HEAD than the tree it was sent).
#   PARALLEL=1: start every grid and study at once (each under the same deadline T), since a
#   single small-model run leaves the GPU mostly idle; WORKERS_<name> (e.g. WORKERS_fig1=6) sets
#   one driver's worker processes, ARGS_<name> its extra arguments (e.g.
#   ARGS_fig1='--relog-alpha-range mlnn bettercnn'), THREADS torch threads per worker (default 1
#   in this mode).
#   Measured on an H200: the 10-seed BetterCNN region took 269 s with 6 workers and the MLNN one
#   323 s with 3, side by side; Figure 1's full-MNIST 100-epoch runs take about 100 s each alone,
#   but with 14 workers on the one GPU none finished within 270 s, so give fig1 3-4 workers.
set -uo pipefail
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
export HDREPRO_DATA="${HDREPRO_DATA:-/tmp/hdrepro-data}" HDREPRO_COMMIT="${HDREPRO_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
out="${DEST:-results/full}" figs="${FIGS:-figures/full}" log="${OUT:-/tmp}/device_log.txt"
mkdir -p "$HDREPRO_DATA/mnist" "$HDREPRO_DATA/fashion-mnist" "$out" "$figs"
cp .gpu/mnist/*.gz "$HDREPRO_DATA/mnist/"
cp .gpu/fashion-mnist/*.gz "$HDREPRO_DATA/fashion-mnist/" 2>/dev/null
if ls .whl/*.whl >/dev/null 2>&1; then  # Chandra et al.'s package for bench_step's side-by-side rows
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
pack() { tar czf "${OUT:-/tmp}/full.tgz" "$out" "$figs"; }
trap pack EXIT
{
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch; print('torch', torch.__version__)"
hdrepro data fetch mnist
ls "$HDREPRO_DATA"/fashion-mnist/*.gz >/dev/null 2>&1 && hdrepro data fetch fashion-mnist
start=$(date +%s)
if [ -n "${PARALLEL:-}" ]; then
    pids=()
    for job in ${GRIDS-} ${STUDIES:-}; do
        script=experiments/$job.py; [ -f "$script" ] || script=experiments/grid_$job.py
        w="WORKERS_$job" a="ARGS_$job"
        timeout "${T:-420}" python3 "$script" --profile "${PROFILE:-full}" --out "$out" --figures "$figs" \
            --executor processes --workers "${!w:-${WORKERS:-3}}" --threads "${THREADS:-1}" \
            --no-progress ${RULES:+--rules $RULES} ${!a:-} > "${OUT:-/tmp}/log_$job.txt" 2>&1 &
        pids+=("$!")
    done
    for p in "${pids[@]}"; do wait "$p"; echo "[device] job $p rc=$? at $(( $(date +%s) - start )) s"; done
    GRIDS="" STUDIES=""
fi
for g in ${GRIDS-logreg gamma mlnn bettercnn}; do
    left=$(( ${T:-420} - ($(date +%s) - start) ))
    [ "$left" -gt 20 ] || { echo "[device] no time left for grid $g"; continue; }
    timeout "$left" python3 experiments/grid_$g.py --profile full --out "$out" --figures "$figs" \
        --executor "${EXECUTOR:-inprocess}" --workers "${WORKERS:-3}" --no-progress \
        ${RULES:+--rules $RULES}
    echo "[device] grid $g rc=$? at $(( $(date +%s) - start )) s"
done
if [ -n "${STACKS:-}" ]; then
    left=$(( ${T:-420} - ($(date +%s) - start) ))
    timeout "$left" python3 experiments/stacks_clipping.py --profile full --out "$out" \
        --figures "$figs" --tables $STACKS --executor processes --workers "${STACK_WORKERS:-8}" \
        --no-progress
    echo "[device] stacks $STACKS rc=$? at $(( $(date +%s) - start )) s"
fi
for study in ${STUDIES:-}; do
    left=$(( ${T:-420} - ($(date +%s) - start) ))
    [ "$left" -gt 20 ] || { echo "[device] no time left for $study"; continue; }
    timeout "$left" python3 experiments/$study.py --profile full --out "$out" --figures "$figs" \
        --executor processes --workers "${STACK_WORKERS:-8}" --no-progress
    echo "[device] $study rc=$? at $(( $(date +%s) - start )) s"
done
case "${BENCH-step grid}" in *step*) timeout 330 python3 bench/bench_step.py --profile full --out "$out"
    timeout 60 python3 bench/profile_step.py --out "$out"
    timeout 60 python3 -m pytest -q tests/test_flat.py tests/test_graphs.py ;; esac
case "${BENCH-step grid}" in *grid*) timeout 200 python3 bench/bench_grid.py --profile full --out "$out" ;; esac
echo "[device] total $(( $(date +%s) - start )) s"
} 2>&1 | tee "$log"
