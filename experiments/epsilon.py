"""Adam's ε from gradient-magnitude histograms: record |g| histograms early in training, propose
a search interval for ε, and check it against a sweep of ε over 10 decades.

Claim tested (Silva & Rodriguez, their histogram rule for ε): the
histogram gives a search space for ε at least two times narrower than the usual default range
that still holds the best ε. Setup: MNIST, MLNN and BetterCNN, Adam α = 1e-3, batch 128, weight
decay 1e-4; the rule in hdrepro.methods.histograms, the validation in hdrepro.studies.epsilon.
Profiles: smoke LogReg on 2% of MNIST, 1 epoch (seconds); quick 10% of MNIST, MLNN 2 epochs,
BetterCNN 1, 1 seed, histograms over the first epoch (~1 min on 2 cores); full all of MNIST,
5 epochs, 3 seeds, histograms over the first epoch.
Writes results/<profile>/epsilon.jsonl, epsilon_histograms.csv and figures/<profile>/epsilon.png.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from grid_common import (run_options, run_parser, save_figure, stamp_figures,  # noqa: E402
                         begin_run_info, write_run_info)

from hdrepro.cli_help import run_main  # noqa: E402
from hdrepro.engine.data import DataConfig, default_data_root  # noqa: E402
from hdrepro.studies.epsilon import EpsilonSpec, record_histogram, validation  # noqa: E402
from hdrepro.engine.models import TITLES as MODEL_TITLES  # noqa: E402
from hdrepro.report.plots_extensions import plot_histogram_time  # noqa: E402
from hdrepro.engine.results import GridStore  # noqa: E402
from hdrepro.engine.cells import run  # noqa: E402

PROFILES = {
    "smoke": EpsilonSpec(models=("logreg",), epochs={"logreg": 1},
                         data=DataConfig("mnist", 0.02), seeds=(1,), hist_steps=10, every=2),
    "quick": EpsilonSpec(epochs={"mlnn": 2, "bettercnn": 1}, data=DataConfig("mnist", 0.1),
                         seeds=(1,), hist_steps=47, every=2),
    "full": EpsilonSpec(epochs={"mlnn": 5, "bettercnn": 5}, hist_steps=469, every=10),
}


def main(argv=None) -> None:
    args = run_parser(__doc__, PROFILES).parse_args(argv)
    spec = PROFILES[args.profile]
    root = args.data or default_data_root()
    out = args.out or Path("results") / args.profile
    store = GridStore(out / "epsilon.jsonl")
    cells = spec.cells()
    if not args.plot_only:
        with store.writing():   # one writer per store, its run record included
            t0, todo = begin_run_info(out / "epsilon_run.json", cells, store, args)
            hist = pd.concat([record_histogram(spec, m, str(root), args.device)
                              for m in spec.models])
            hist.to_csv(out / "epsilon_histograms.csv", index=False)
            run(cells, store, run_options(args, root), "epsilon")
            write_run_info(out / "epsilon_run.json", t0, len(cells), args, cells_run=todo)
    stamp_figures([draw(spec, store, cells, out, args.figures)], "epsilon", args, out)


def draw(spec: EpsilonSpec, store: GridStore, cells, out: Path, figures: Path) -> Path:
    frame = store.frame()
    frame = frame[frame.cell_id.isin({c.cell_id for c in cells})]
    hist = pd.read_csv(out / "epsilon_histograms.csv")
    val = validation(frame, hist).set_index("model")
    fig, axes = plt.subplots(2, len(spec.models), figsize=(5.2 * len(spec.models), 7.0),
                             squeeze=False)
    for j, model in enumerate(spec.models):
        v = val.loc[model]
        ax = axes[0, j]
        plot_histogram_time(hist[hist.model == model], ax)
        for e in (v.interval_lo, v.interval_hi):
            ax.axhline(math.log10(e), color="w", ls="--", lw=1)
        ax.set_title(f"{MODEL_TITLES.get(model, model)}: |g| of Adam (ε = 1e-8) over its first "
                     f"{spec.hist_steps} steps\nshare per bin; dashed: the proposed ε interval",
                     fontsize=9)
        ax = axes[1, j]
        f = frame[frame.model == model].copy()
        f.loc[f.diverged.astype(bool), "val_loss"] = float("nan")
        m = f.groupby("eps")["val_loss"].agg(["mean", "min", "max"])
        ax.errorbar(m.index, m["mean"], yerr=[m["mean"] - m["min"], m["max"] - m["mean"]],
                    marker="o", ms=4, capsize=2, color="C0")
        ax.axvspan(v.interval_lo, v.interval_hi, color="C1", alpha=0.2,
                   label=f"proposed interval ({v.decades:.0f} decades)")
        ax.axvline(v.best_eps, color="C3", ls=":", label=f"best ε = {v.best_eps:.0e}")
        ax.set_xscale("log")
        ax.set_xlabel("ε")
        ax.set_ylabel(f"final validation loss ({spec.epochs[model]} epoch(s))")
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(fontsize=7)
    fig.suptitle(f"Adam's ε on {spec.data.name} ({spec.data.fraction:.0%}), "
                 f"{len(spec.seeds)} seed(s)", fontsize=9)
    return save_figure(fig, figures, "epsilon.png")


if __name__ == "__main__":
    run_main(main)
