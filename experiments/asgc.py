"""ASGC (adaptive stochastic gradient clipping) against Adam, SGD-momentum, AdaGrad and RMSprop,
with its ablations, a random-hyperparameter robustness study and per-layer gradient-magnitude
distributions before and after clipping.

Claim tested (the ASGC proposal): ASGC gives higher accuracy,
faster, more stably and with a smaller train-test gap than the usual optimizers. Setup (ours; the
proposal's ImageNet/WMT/Atari are out of reach): MNIST and Fashion-MNIST, MLNN and BetterCNN,
batch 128, weight decay 1e-4; ASGC around SGD with momentum 0.9; formulas, grids and metrics in
hdrepro.methods.asgc and hdrepro.studies.asgc.
Profiles: smoke LogReg on 2% of MNIST, 2 epochs (seconds); quick MLNN on 10% of MNIST and of
Fashion-MNIST, 4 epochs, 1 seed, 3 random configurations per method on MNIST (~5 min on 2 cores);
full both data sets in full, MLNN and BetterCNN, 10 epochs, 3 seeds, 10 random configurations
(176 runs per data-model pair; stored runs took 100-190 s each on one CPU thread, so ~3-4 h
of wall time per pair on 2 cores).
The pairs run one after the other, MLNN's first: a pair's tuning seed by seed, then its
ablations and random search. A run cut short resumes where it stopped, and the report reads a
pair once every method has its whole tuning budget on a seed (hdrepro.studies.asgc.reportable).
Writes results/<profile>/asgc.jsonl, asgc_histograms.csv, figures/<profile>/asgc.png and
figures/<profile>/asgc_gradients.png.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from grid_common import (begin_run_info, run_options, run_parser, save_figure,  # noqa: E402
                         stamp_figures, write_run_info)

from hdrepro.studies.asgc import (COLOURS, LRS, TITLES, ASGCSpec, asgc_config, chosen, final_runs,
                                  gradient_histograms, random_runs, reportable)  # noqa: E402
from hdrepro.cli_help import run_main  # noqa: E402
from hdrepro.engine.data import DataConfig, default_data_root  # noqa: E402
from hdrepro.engine.models import TITLES as MODEL_TITLES  # noqa: E402
from hdrepro.report.plots_extensions import plot_curves, plot_distributions, plot_layer_histograms  # noqa: E402
from hdrepro.engine.results import GridStore  # noqa: E402
from hdrepro.engine.cells import RunCell, run  # noqa: E402
from hdrepro.methods.registry import OptimConfig  # noqa: E402

PROFILES = {
    "smoke": ASGCSpec(datasets=("mnist",), models=("logreg",), fraction=0.02,
                      epochs={"logreg": 2}, seeds=(1,), random_samples=1,
                      random_datasets=("mnist",), last_epochs=2),
    "quick": ASGCSpec(models=("mlnn",), fraction=0.1, epochs={"mlnn": 4}, seeds=(1,),
                      random_samples=3, random_datasets=("mnist",)),
    "full": ASGCSpec(),
}
HIST_EPOCHS = {"smoke": 1, "quick": 1, "full": 2}


def main(argv=None) -> None:
    args = run_parser(__doc__, PROFILES).parse_args(argv)
    spec = PROFILES[args.profile]
    root = args.data or default_data_root()
    out = args.out or Path("results") / args.profile
    store = GridStore(out / "asgc.jsonl")
    if not args.plot_only:
        with store.writing():   # one writer per store, its run record included
            options = run_options(args, root)
            t0, todo = begin_run_info(out / "asgc_run.json",
                                      spec.tune_cells() + spec.random_cells(), store, args,
                                      later=spec.ablation_count())
            cells = 0
            for pair in spec.pairs():   # pair by pair: a run cut short leaves whole pairs
                cells += run_pair(spec, pair, store, options)
            write_run_info(out / "asgc_run.json", t0, cells, args, cells_run=todo)
            write_histograms(spec, store, root, out, HIST_EPOCHS[args.profile], args.device)
    stamp_figures(draw(spec, store, out, args.figures), "asgc", args, out)


def run_pair(spec: ASGCSpec, pair: tuple[str, str], store: GridStore, options) -> int:
    """One (data, model) pair's tuning, then its ablations at ASGC's chosen configuration and
    its random search; returns how many cells it holds."""
    name = f"asgc {pair[1]} on {pair[0]}"
    tune = spec.tune_cells(pair)
    run(tune, store, options, f"{name}: tuning")
    rest = spec.ablation_cells(store.frame(), pair) + spec.random_cells(pair)
    run(rest, store, options, f"{name}: ablations, random search")
    return len(tune) + len(rest)


def write_histograms(spec: ASGCSpec, store: GridStore, root: Path, out: Path, epochs: int,
                     device: str) -> None:
    """|g| per layer before and after ASGC's clipping, and SGD-momentum's, at their chosen
    configurations on the first data set and model."""
    best = chosen(store.frame())
    data, model = spec.datasets[0], spec.models[0]
    frames = []
    for method in ("asgc-momentum", "momentum"):
        row = best[(best.data == data) & (best.model == model) & (best.method == method)].iloc[0]
        lr, opts = float(row.alpha0), row.options_dict
        optim = (asgc_config(lr, opts["noise_scale"], opts["threshold"])
                 if method.startswith("asgc") else OptimConfig(method, lr))
        cell = RunCell("asgc", model, DataConfig(data, spec.fraction), optim, epochs, 1,
                       tags=(("method", method),))
        frames.append(gradient_histograms(cell, str(root), device=device))
    pd.concat(frames).to_csv(out / "asgc_histograms.csv", index=False)


def draw(spec: ASGCSpec, store: GridStore, out: Path, figures: Path) -> list[Path]:
    """The pairs the report reads (a study cut short draws its finished pairs only)."""
    frame = reportable(store.frame())
    pairs = [p for p in spec.pairs() if not frame.empty
             and ((frame.data == p[0]) & (frame.model == p[1])).any()]
    if not pairs:
        print("asgc: no data–model pair is tuned on a whole seed yet; nothing to draw")
        return []
    runs = final_runs(frame)
    searched = random_runs(frame)   # whole random searches only
    rows = 2 if len(searched) else 1   # no empty row before the random search
    fig, axes = plt.subplots(rows, len(pairs), figsize=(4.6 * len(pairs) + 1, 3.7 * rows + 0.4),
                             squeeze=False)
    for j, (data, model) in enumerate(pairs):
        r = runs[(runs.data == data) & (runs.model == model)]
        plot_curves(r, axes[0, j], "curve_val_acc", COLOURS, TITLES)
        axes[0, j].set_ylabel("validation accuracy")
        seeds = r[r.phase == "tune"].seed.nunique()
        axes[0, j].set_title(f"{MODEL_TITLES.get(model, model)} on {data} ({spec.fraction:.0%}, "
                             f"{spec.epochs[model]} epochs)\nchosen configurations, {seeds} seed(s)",
                             fontsize=9)
        if rows == 1:
            continue
        rnd = searched[(searched.data == data) & (searched.model == model)]
        ax = axes[1, j]
        if rnd.empty:
            ax.set_visible(False)
            continue
        plot_distributions(rnd.assign(test_error=rnd.test_error.where(~rnd.diverged.astype(
            bool))), ax, "test_error", list(LRS), TITLES)
        ax.set_yscale("log")   # runs at ~90% (diverged, stuck) would flatten the rest otherwise
        ax.set_ylabel("final test error, random configurations")
        n = rnd.groupby("method").size()   # a study cut short holds fewer for some methods
        ax.set_title(f"{n.min()}{'' if n.min() == n.max() else f'–{n.max()}'} random "
                     "configurations per method", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("ASGC vs the usual optimizers", fontsize=9)
    written = [save_figure(fig, figures, "asgc.png")]
    hist_csv = out / "asgc_histograms.csv"
    if hist_csv.exists():
        hist = pd.read_csv(hist_csv)
        layers = list(dict.fromkeys(hist.layer))
        fig, axes = plt.subplots(2, len(layers), figsize=(3.2 * len(layers), 5.6), squeeze=False)
        for j, layer in enumerate(layers):
            plot_layer_histograms(hist[hist.method == "asgc-momentum"], axes[0, j], layer)
            plot_layer_histograms(hist[hist.method == "momentum"], axes[1, j], layer,
                                  tags=("before",))
        axes[0, 0].set_ylabel("ASGC: share of elements")
        axes[1, 0].set_ylabel("SGD momentum: share")
        axes[0, 0].legend(fontsize=7)
        fig.suptitle(f"|g| per layer over training ({spec.models[0]}, {spec.datasets[0]}):\n"
                     "ASGC before/after clipping (top), SGD momentum (bottom)", fontsize=9)
        written.append(save_figure(fig, figures, "asgc_gradients.png"))
    return written


if __name__ == "__main__":
    run_main(main)
