"""Baydin et al.'s tuning grid: iterations until the training loss first reaches 0.29, over
α₀ × β, for SGD-HD, SGDN-HD and Adam-HD against their base optimizers (hdrepro.studies.threshold).

Claim tested (Baydin et al., abstract and tuning figure): HD reduces the need to tune α₀; across
a large region of the grid HD reaches the loss threshold in no more iterations than its base
optimizer at the same α₀. Setup: logistic regression on all of MNIST, batch 128, μ = 0.9, weight
decay 1e-4, α₀ and β in {1e-1, …, 1e-6}, a run stops at the first minibatch whose loss is
≤ 0.29 (their train.py's lossThreshold), at most 10 epochs (4,690 iterations).
Profiles: smoke SGD-HD 2 × 2 on 2% of MNIST, 1 epoch (seconds); quick the whole grid on 10% of
MNIST, 10 epochs, 1 seed (~5 min on 2 cores); full all of MNIST, 10 epochs, 3 seeds.
Writes results/<profile>/threshold_grid.jsonl and figures/<profile>/threshold_grid.png.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from grid_common import save_figure, study_main  # noqa: E402

from hdrepro.cli_help import run_main  # noqa: E402
from hdrepro.engine.data import DataConfig  # noqa: E402
from hdrepro.report.plots_extensions import plot_threshold_grid  # noqa: E402
from hdrepro.engine.results import GridStore  # noqa: E402
from hdrepro.methods.registry import title  # noqa: E402
from hdrepro.studies.threshold import ThresholdSpec, iteration_table  # noqa: E402

PROFILES = {
    "smoke": ThresholdSpec(optimizers=("sgd-hd",), alphas=(1e-1, 1e-3), betas=(1e-3, 1e-5),
                           max_epochs=1, data=DataConfig("mnist", 0.02)),
    "quick": ThresholdSpec(data=DataConfig("mnist", 0.1)),
    "full": ThresholdSpec(seeds=(1, 2, 3)),
}


def main(argv=None) -> None:
    study_main(__doc__, PROFILES, "threshold_grid", "threshold grid", draw, argv)


def draw(store: GridStore, spec: ThresholdSpec, figures: Path) -> Path:
    frame = store.frame()
    frame = frame[frame.cell_id.isin({c.cell_id for c in spec.cells()})] if len(frame) else frame
    fig, axes = plt.subplots(1, len(spec.optimizers), squeeze=False,
                             figsize=(3.6 * len(spec.optimizers) + 0.6, 0.42 * len(spec.betas)
                                      + 2.2))
    iters_per_epoch = -(-round(60000 * spec.data.fraction) // 128)
    cap = spec.max_epochs * iters_per_epoch
    for hd, ax in zip(spec.optimizers, axes[0]):
        if frame.empty or not (frame["hd"] == hd).any():
            ax.set_title(f"{title(hd)}: no runs stored yet", fontsize=9)
            ax.axis("off")
            continue
        plot_threshold_grid(iteration_table(frame, hd), ax, title(hd), cap)
    fig.suptitle(f"Iterations until a minibatch loss ≤ {spec.threshold:g}, LogReg, "
                 f"{spec.data.name} {spec.data.fraction:.0%}, median of {len(spec.seeds)} "
                 f"seed(s), cap {cap}\ntop row the base optimizer; red outline: HD at least as "
                 "fast as it at the same α₀; –: not reached", fontsize=8.5)
    return save_figure(fig, figures, "threshold_grid.png")


if __name__ == "__main__":
    run_main(main)
