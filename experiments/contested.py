"""SGD-HD, MARTHE and HDM where the MLNN and BetterCNN grids are contested: α₀ × each method's
own hyper-rate, over seeds (hdrepro.studies.contested).

Question: do the modern hypergradient methods remove the divergences that SGD-HD shows there?
Setup as the grids (grid_mlnn.py, grid_bettercnn.py): the first 6,000/1,000 MNIST images, batch
128, weight decay 1e-4; α₀ ∈ {1e-4, 1e-3, 1e-2} × rate ∈ {1e-3, 1e-2, 1e-1}; SGD at each α₀.
Profiles: smoke the MLNN, 1 α₀ × 1 rate, 2% of MNIST, 1 epoch (seconds); quick both models,
3 epochs, 1 seed (~5 min on 2 cores); full both models, 15 epochs, 3 seeds (~1 h on 2 cores).
Writes results/<profile>/contested.jsonl and figures/<profile>/contested.png.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from grid_common import save_figure, study_main  # noqa: E402

from hdrepro.cli_help import run_main  # noqa: E402
from hdrepro.engine.cells import with_lost  # noqa: E402
from hdrepro.studies.contested import NAMES, RATE_SYMBOL, ContestedSpec  # noqa: E402
from hdrepro.engine.data import DataConfig  # noqa: E402
from hdrepro.engine.models import TITLES as MODEL_TITLES  # noqa: E402
from hdrepro.engine.results import GridStore  # noqa: E402

PROFILES = {
    "smoke": ContestedSpec(models=("mlnn",), alphas=(1e-2,), rates=(1e-2,), epochs=1,
                           data=DataConfig("mnist", 0.02), seeds=(1,)),
    "quick": ContestedSpec(epochs=3, seeds=(1,)),
    "full": ContestedSpec(),
}


def main(argv=None) -> None:
    study_main(__doc__, PROFILES, "contested", "contested region", draw, argv)


def draw(store: GridStore, spec: ContestedSpec, figures: Path) -> Path:
    """One heatmap per model and method: the share of seeds whose run was lost (diverged or
    stuck at chance; white 0%, dark red 100%), rate down, α₀ across; cells not yet stored are hatched."""
    frame = store.frame()
    frame = with_lost(frame[frame.cell_id.isin({c.cell_id for c in spec.cells()})]) \
        if len(frame) else frame
    fig, axes = plt.subplots(len(spec.models), len(spec.methods), squeeze=False,
                             figsize=(3.2 * len(spec.methods) + 1.5, 2.9 * len(spec.models)))
    for i, model in enumerate(spec.models):
        for j, method in enumerate(spec.methods):
            ax = axes[i, j]
            share = np.full((len(spec.rates), len(spec.alphas)), np.nan)
            if len(frame):
                runs = frame[(frame.model == model) & (frame.method == method)]
                for r, rate in enumerate(spec.rates):
                    for a, alpha in enumerate(spec.alphas):
                        cell = runs[np.isclose(runs.beta, rate) & np.isclose(runs.alpha0, alpha)]
                        if len(cell):
                            share[r, a] = cell.lost.mean()
            ax.imshow(share, cmap="Reds", vmin=0, vmax=1, aspect="auto")
            for r, a in zip(*np.nonzero(np.isnan(share))):
                ax.add_patch(plt.Rectangle((a - 0.5, r - 0.5), 1, 1, fill=False, hatch="//",
                                           color="0.6", lw=0))
            for r, a in zip(*np.nonzero(~np.isnan(share))):
                ax.text(a, r, f"{share[r, a]:.0%}", ha="center", va="center", fontsize=7,
                        color="white" if share[r, a] > 0.6 else "black")
            ax.set_xticks(range(len(spec.alphas)), [f"{a:g}" for a in spec.alphas], fontsize=7)
            ax.set_yticks(range(len(spec.rates)), [f"{r:g}" for r in spec.rates], fontsize=7)
            ax.set_xlabel("α₀", fontsize=8)
            ax.set_ylabel(RATE_SYMBOL[method], fontsize=8)
            ax.set_title(f"{MODEL_TITLES.get(model, model)}: {NAMES[method]}", fontsize=8)
    fig.suptitle(f"Lost runs (diverged, or test error ≥ 85%) over {len(spec.seeds)}"
                 f" seed(s), {spec.epochs} epochs, {spec.data.name} {spec.data.fraction:.0%}; "
                 "hatched: not stored", fontsize=9)
    return save_figure(fig, figures, "contested.png")


if __name__ == "__main__":
    run_main(main)
