"""Sensitivity to the initial learning rate: every optimizer of the overview slides (torch.optim)
against its HD version at the same α₀, across α₀ over 4 decades.

Claim tested (Baydin et al., §5): HD makes the final result depend less on α₀. Setup: MNIST,
LogReg, MLNN and BetterCNN, batch 128, weight decay 1e-4, HD additive with β = 1e-3 (SGD,
momentum, Nesterov) or 1e-7 (adaptive methods), one β per kind, not tuned (hdrepro.studies.sensitivity).
Profiles: smoke 2 optimizers, 2 α₀, LogReg on 2% of MNIST (seconds); quick all 12 optimizers,
α₀ ∈ {1e-4 … 1}, 10% of MNIST, LogReg 3 epochs, MLNN and BetterCNN 1 epoch, 1 seed (~5 min on 2
cores; one seed cannot judge claim 4, which needs a spread over seeds); full α₀ at half decades
(MARTHE and HDM at whole decades), all of MNIST, 10 epochs, seeds 1-3 (per extra seed on 2 CPU
cores: LogReg ~8 min, MLNN ~2.8 h, BetterCNN ~3.9 h). MARTHE (auto μ, β = 1e-3) and HDM
(η = 0.1) run beside SGD (hdrepro.studies.sensitivity).
Writes results/<profile>/family_sensitivity.jsonl and figures/<profile>/family_sensitivity.png.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from grid_common import save_figure, study_main  # noqa: E402

from hdrepro.cli_help import run_main  # noqa: E402
from hdrepro.engine.data import DataConfig  # noqa: E402
from hdrepro.engine.models import TITLES as MODEL_TITLES  # noqa: E402
from hdrepro.report.format import span  # noqa: E402
from hdrepro.report.plots_extensions import (outcome_legend, plot_sensitivity,  # noqa: E402
                                             plot_tuning_change, shared_legend)
from hdrepro.engine.results import GridStore  # noqa: E402
from hdrepro.studies.sensitivity import (NEAR_BEST, SensitivitySpec,  # noqa: E402
                                        final_losses, pair_tuning, whole)

PROFILES = {
    "smoke": SensitivitySpec(models=("logreg",), optimizers=("sgd", "adam"), alphas=(1e-3, 1e-1),
                             epochs={"logreg": 1}, data=DataConfig("mnist", 0.02)),
    "quick": SensitivitySpec(epochs={"logreg": 3, "mlnn": 1, "bettercnn": 1},
                             data=DataConfig("mnist", 0.1)),
    "full": SensitivitySpec(alphas=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0),
                            modern_alphas=(1e-4, 1e-3, 1e-2, 1e-1, 1.0), seeds=(1, 2, 3)),
}


def main(argv=None) -> None:
    study_main(__doc__, PROFILES, "family_sensitivity", "family", draw, argv)


def draw(store: GridStore, spec: SensitivitySpec, figures: Path) -> Path:
    frame = store.frame()
    frame = frame[frame.cell_id.isin({c.cell_id for c in spec.cells()})]
    losses = final_losses(whole(frame))   # seed means over the same seeds at every α₀
    pairs = pair_tuning(frame)
    fig, axes = plt.subplots(3, len(spec.models), figsize=(4.2 * len(spec.models) + 2.2, 10.2),
                             squeeze=False, height_ratios=(1, 1, 1.1))
    for j, model in enumerate(spec.models):
        for i, (metric, word) in enumerate((("train_loss", "training"),
                                            ("val_loss", "validation"))):
            ax = axes[i, j]
            plot_sensitivity(losses[losses.model == model], ax, metric, spec.optimizers)
            ax.set_ylabel(f"final {word} loss")
            ax.set_title(f"{MODEL_TITLES.get(model, model)}, {spec.epochs[model]} epoch(s)",
                         fontsize=9)
        mine = pairs[pairs.model == model] if not pairs.empty else pairs
        plot_tuning_change(mine, axes[2, j], spec.optimizers)
    lims = [ax.get_xlim() for ax in axes[2]]   # one scale, so the models read side by side
    for ax in axes[2]:
        ax.set_xlim(min(lo for lo, _ in lims), max(hi for _, hi in lims))
    axes[2, 0].set_title(f"α₀ within {NEAR_BEST - 1:.0%} of the best validation loss, "
                         "HD − base", fontsize=9, loc="left")
    outcome_legend(axes[2, -1], pairs.get("outcome", ()), fontsize=7, loc="center left",
                   bbox_to_anchor=(1.02, 0.5))
    shared_legend(axes[0, -1], axes, fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.0))
    # "1–3" seeds while a store is being filled
    fig.suptitle(f"Sensitivity to α₀ on {spec.data.name} ({spec.data.fraction:.0%}), mean of "
                 f"{span(losses.seeds)} seed(s): solid the torch.optim optimizer, dashed its HD "
                 "version (additive, β = 1e-3 non-adaptive / 1e-7 adaptive); black: MARTHE "
                 "and HDM", fontsize=9)
    return save_figure(fig, figures, "family_sensitivity.png")


if __name__ == "__main__":
    run_main(main)
