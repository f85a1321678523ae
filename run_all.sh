#!/usr/bin/env bash
# Set up (.venv, package, data), run every experiment of a profile, draw its figures and write
# its report, all through the `hdrepro` command (hdrepro/cli.py).
# Usage: ./run_all.sh [--profile smoke|quick|full] [--out DIR] [--dry-run] [--redraw]
#   smoke: the whole pipeline at tiny scale (< 2 min on 2 CPU cores; the test suite runs it)
#   quick: every figure and table at reduced scale (< 30 min on 2 CPU cores); the default
#   full:  the papers' scale (days on 2 CPU cores, hours on one GPU); uses a GPU when present
# A profile writes DIR/results/<profile>/, DIR/figures/<profile>/, DIR/REPORT.md and the long
# tables under DIR/docs/report/. DIR is out/<profile> for smoke and quick, so that a try never
# touches the committed paper-scale report, and the repository itself for full.
# --redraw trains nothing: it redraws every committed figure and REPORT.md from the committed
# results (results/full and results/quick), in under a minute.
# --dry-run prints where the profile would write, and stops.
# Grid and stack runs can be steered with HDREPRO_GRID_EXECUTOR (inprocess|processes|dask),
# HDREPRO_GRID_WORKERS and HDREPRO_GRID_BATCH (cells per batched run; 0 = one at a time;
# unset: by model and device, hdrepro.studies.grids.auto_batch).
set -euo pipefail
cd "$(dirname "$0")"
profile=quick
out=
dry=
redraw=
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="${2:?--profile needs smoke, quick or full}"; shift 2 ;;
        --profile=*) profile="${1#*=}"; shift ;;
        --out) out="${2:?--out needs a folder}"; shift 2 ;;
        --out=*) out="${1#*=}"; shift ;;
        --dry-run) dry=1; shift ;;
        --redraw) redraw=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "run_all.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$profile" in smoke|quick|full) ;; *)
    echo "run_all.sh: unknown profile '$profile'; choose smoke, quick or full" >&2; exit 2 ;;
esac
if [ -n "$redraw" ]; then
    . scripts/setup_env.sh
    exec python scripts/redraw.py
fi
[ -n "$out" ] || { [ "$profile" = full ] && out=. || out="out/$profile"; }
if [ "$profile" != full ] && grep -qs '^<!-- hdrepro report: profile full' "$out/REPORT.md"; then
    echo "run_all.sh: $out/REPORT.md is the paper-scale (full-profile) report; write the" \
         "$profile profile elsewhere with --out out/$profile" >&2
    exit 2
fi
if [ -n "$dry" ]; then
    echo "results=$out/results/$profile figures=$out/figures/$profile report=$out/REPORT.md"
    exit 0
fi

setup_t0="$EPOCHREALTIME"
. scripts/setup_env.sh
results="$out/results/$profile"
figures="$out/figures/$profile"
mkdir -p "$results" "$figures"
export HDREPRO_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

# Each step's wall time goes to run_all_timing_fresh.csv when the results folder started empty,
# else to run_all_timing_resumed.csv (a resumed run is quick and must not hide the real cost).
[ -z "$(ls -A "$results")" ] && start=fresh || start=resumed
timing="$results/.run_all_timing.part"
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)"
machine="$(nproc) CPU cores${gpu:+ + $gpu}"
record() { echo "$profile,$1,$(awk "BEGIN {print $EPOCHREALTIME - $2}"),$machine,$HDREPRO_COMMIT" >> "$timing"; }
step() {  # step NAME COMMAND...: run COMMAND and record its wall time under NAME
    local name="$1" t0="$EPOCHREALTIME"; shift
    "$@"
    record "$name" "$t0"
}
echo "profile,step,seconds,machine,commit" > "$timing"
record set-up "$setup_t0"

echo "[run_all] profile=$profile results=$results"
hdrepro data fetch cifar10 --optional --timeout 3 || true  # used when it can be had
step equivalence hdrepro run equivalence --profile "$profile" --out "$results" --figures "$figures"
# worker processes for the runs of Figure 1 and of the studies below (the smoke profile's runs
# take milliseconds, less than starting worker processes)
[ "$profile" = smoke ] && study_executor=inprocess || study_executor=processes
step "Figure 1" hdrepro run fig1 --profile "$profile" --out "$results" --figures "$figures" \
    --executor "${HDREPRO_GRID_EXECUTOR:-$study_executor}" --workers "${HDREPRO_GRID_WORKERS:-2}"
# Baydin et al.'s tuning grid: iterations to a training loss of 0.29 over α₀ × β
step "threshold grid" hdrepro run threshold_grid --profile "$profile" --out "$results" \
    --figures "$figures" --executor "${HDREPRO_GRID_EXECUTOR:-$study_executor}" \
    --workers "${HDREPRO_GRID_WORKERS:-2}"
for grid in logreg mlnn bettercnn gamma; do  # the reproducibility report's Figures 2-5
    step "grid $grid" hdrepro grid $grid --profile "$profile" --out "$results" --figures "$figures" \
        ${HDREPRO_GRID_BATCH:+--batch "$HDREPRO_GRID_BATCH"} \
        --executor "${HDREPRO_GRID_EXECUTOR:-inprocess}" --workers "${HDREPRO_GRID_WORKERS:-2}"
done
if [ "$profile" = full ]; then  # the contested grid regions over 10 seeds (hours on 2 CPU cores)
    for grid in seeds_logreg seeds_mlnn seeds_bettercnn; do
        step "grid $grid" hdrepro grid $grid --profile "$profile" --out "$results" \
            --figures "$figures" ${HDREPRO_GRID_BATCH:+--batch "$HDREPRO_GRID_BATCH"} \
            --executor "${HDREPRO_GRID_EXECUTOR:-inprocess}" --workers "${HDREPRO_GRID_WORKERS:-2}"
    done
    # why BetterCNN's HD runs diverge at the papers' setting: float64 twins, traced
    step "bettercnn divergence" hdrepro run bettercnn_divergence --profile "$profile" \
        --out "$results" --figures "$figures" --executor "${HDREPRO_GRID_EXECUTOR:-processes}" \
        --workers "${HDREPRO_GRID_WORKERS:-2}"
fi
# the clipping report's Tables 1-5: one small run per cell, so worker processes by default
step stacks hdrepro stacks --profile "$profile" --out "$results" --figures "$figures" \
    --executor "${HDREPRO_GRID_EXECUTOR:-processes}" --workers "${HDREPRO_GRID_WORKERS:-2}"
# beyond the papers: the optimizer family, learning-rate-free rivals, ASGC, Adam's ε, HDM-Best vs
# L-BFGS, and MARTHE and HDM where the grids are contested
for study in family_sensitivity rivals asgc epsilon convex_hdm contested; do
    step "$study" hdrepro run $study --profile "$profile" --out "$results" --figures "$figures" \
        --executor "${HDREPRO_GRID_EXECUTOR:-$study_executor}" --workers "${HDREPRO_GRID_WORKERS:-2}"
done
step "bench step" hdrepro bench step --profile "$profile" --out "$results"
step "bench rivals" hdrepro bench rivals --profile "$profile" --out "$results"
step "bench grid" hdrepro bench grid --profile "$profile" --out "$results"
step "bench denormal" hdrepro bench denormal --profile "$profile" --out "$results"
mv "$timing" "$results/run_all_timing_$start.csv"
hdrepro report --results "$results" --out "$out/REPORT.md"
echo "[run_all] done: $out/REPORT.md"
