"""Why BetterCNN's SGD-HD and SGDN-HD diverge at the papers' α₀ = β = 1e-3 (the reproducibility
report found them similar to the paper's there; our grid cell and Figure 1's runs diverge).

Each seed runs in float32 and again in float64 (same initial weights, same minibatch order), with
α_t, ‖g_t‖ and h_t traced step by step (hdrepro.studies.divergence). The float64 twins say whether
float32 rounding causes the blow-up; the traces show what runs away first. The probability of
divergence over seeds comes from grid_seeds_bettercnn.py.
Setup as grid_bettercnn.py's full profile (the first 6,000/1,000 MNIST images, batch 128,
μ = 0.9 for SGDN-HD, weight decay 1e-4, additive rule), but 20 epochs (940 steps) instead of 100:
in the 10-seed grid every divergence at this setting came by step 714 (SGD-HD: steps 385-714,
SGDN-HD: 58-77), and float64 convolutions on a CPU are about 5× slower than float32.
Profiles: smoke SGD-HD, 1 seed, 2% of MNIST, 1 epoch (seconds); quick both optimizers, 3 seeds,
10% of MNIST, 2 epochs (minutes); full both optimizers, 10 seeds, 20 epochs (one CPU core: about
an hour, resumable).
Writes results/<profile>/bettercnn_divergence.jsonl and figures/<profile>/bettercnn_divergence.png.
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from grid_common import save_figure, study_main  # noqa: E402

from hdrepro.cli_help import run_main  # noqa: E402
from hdrepro.engine.data import DataConfig  # noqa: E402
from hdrepro.studies.divergence import DivergenceSpec  # noqa: E402
from hdrepro.engine.results import GridStore  # noqa: E402
from hdrepro.methods.registry import title  # noqa: E402

PROFILES = {
    "smoke": DivergenceSpec(optimizers=("sgd-hd",), seeds=(1,), epochs=1,
                            data=DataConfig("mnist", 0.02)),
    "quick": DivergenceSpec(seeds=(1, 2, 3), epochs=2),
    "full": DivergenceSpec(epochs=20),
}
#: the axes' ranges: α_t and ‖g_t‖ reach 1e100 and more once a run has blown up, which would
#: flatten the climb that leads there; values beyond are drawn at the top edge
LIMITS = {"alpha": (1e-5, 1e2), "grad_norm": (1e-2, 1e4)}


def draw(store: GridStore, spec: DivergenceSpec, figures):
    """α_t (top) and ‖g_t‖ (bottom) per optimizer: float32 solid, float64 dashed; red the runs
    that diverged (ending with ×), grey those that did not."""
    frame = store.frame()
    fig, axes = plt.subplots(2, len(spec.optimizers), figsize=(6 * len(spec.optimizers), 7),
                             squeeze=False, sharex="col")
    for j, opt in enumerate(spec.optimizers):
        runs = frame[frame.optimizer == opt] if len(frame) else frame
        for r in runs.itertuples():
            t = r.trace
            style = dict(color="tab:red" if r.diverged else "0.6", lw=0.8, alpha=0.8,
                         ls="-" if r.dtype == "float32" else "--")
            for i, key in enumerate(("alpha", "grad_norm")):
                top = LIMITS[key][1]
                ys = [min(abs(v), top) if math.isfinite(v) else top for v in t[key]]
                axes[i, j].plot(t["iteration"], ys, **style)
                if r.diverged:
                    axes[i, j].plot(t["iteration"][-1], ys[-1], "x", color="tab:red")
                axes[i, j].set_ylim(*LIMITS[key])
        axes[0, j].set_title(f"BetterCNN {title(opt)}, α₀ = β = 1e-3, "
                             f"{runs.seed.nunique() if len(runs) else 0} seeds")
        axes[0, j].set_ylabel("|α_t|")
        axes[1, j].set_ylabel("‖g_t‖")
        axes[1, j].set_xlabel("iteration")
        for ax in axes[:, j]:
            ax.set_yscale("log")
    fig.suptitle("red: diverged (× where the run stopped; values beyond the axes drawn at their "
                 "top), grey: did not; solid float32, dashed float64", fontsize=9)
    return save_figure(fig, figures, "bettercnn_divergence.png")


if __name__ == "__main__":
    run_main(lambda: study_main(__doc__, PROFILES, "bettercnn_divergence",
                                "bettercnn divergence", draw))
