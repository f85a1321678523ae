"""HD against the learning-rate-free optimizers users pick today: Prodigy, D-Adaptation (Adam),
Schedule-Free AdamW and DoG, each with its defaults and with its authors' recommended setting.

Claim tested: none of the papers compares them; the question is the user's: which of these needs
the least tuning and gives the lowest error at the same budget? Setup: MNIST, LogReg, MLNN and
BetterCNN, batch 128, weight decay 1e-4, the same epochs for every method, 3 seeds; Adam-HD and
SGDN-HD at Baydin et al.'s settings, Adam at α = 1e-3 (hdrepro.studies.rivals). Sensitivity: each
method's own initial scale × 10^k on MLNN. Wall time per step: bench/bench_rivals.py.
Profiles: smoke LogReg on 2% of MNIST, 1 epoch, 1 seed (seconds); quick 10% of MNIST, LogReg 3
epochs, MLNN 2, BetterCNN 1, 3 seeds, scale sweep k ∈ {-2, -1, 1, 2} with 1 seed (~4 min on 2
cores); full all of MNIST, 10 epochs, 3 seeds (sweep with 3 seeds).
Writes results/<profile>/rivals.jsonl and figures/<profile>/rivals.png.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from grid_common import run_parser, run_study, save_figure, stamp_figures  # noqa: E402

from hdrepro.methods import rivals  # noqa: E402
from hdrepro.cli_help import run_main  # noqa: E402
from hdrepro.engine.data import DataConfig  # noqa: E402
from hdrepro.engine.models import TITLES as MODEL_TITLES  # noqa: E402
from hdrepro.report.plots_extensions import plot_scale_sensitivity  # noqa: E402
from hdrepro.engine.results import GridStore  # noqa: E402
from hdrepro.studies.rivals import COLOURS, TITLES, RivalSpec, colour, comparison, scale_frame  # noqa: E402

PROFILES = {
    "smoke": RivalSpec(models=("logreg",), epochs={"logreg": 1}, data=DataConfig("mnist", 0.02),
                       seeds=(1,), scale_model="logreg", scale_steps=(-1, 1)),
    "quick": RivalSpec(epochs={"logreg": 3, "mlnn": 2, "bettercnn": 1},
                       data=DataConfig("mnist", 0.1)),
    "full": RivalSpec(scale_seeds=(1, 2, 3)),
}


def main(argv=None) -> None:
    args = run_parser(__doc__, PROFILES).parse_args(argv)
    spec = PROFILES[args.profile]
    missing = [r for r in spec.rivals if not rivals.available(r)]
    if missing:
        raise SystemExit(f"rivals.py needs {', '.join(missing)}: pip install -e '.[rivals]' "
                         "(the README's set-up installs it)")
    out = args.out or Path("results") / args.profile
    store = GridStore(out / "rivals.jsonl")
    cells = spec.cells() + spec.scale_cells()
    if not args.plot_only:
        run_study(args, out, "rivals", cells, store, "rivals")
    stamp_figures([draw(store, spec, cells, args.figures)], "rivals", args, out)


def draw(store: GridStore, spec: RivalSpec, cells, figures: Path) -> Path:
    frame = store.frame()
    frame = frame[frame.cell_id.isin({c.cell_id for c in cells})]
    comp = comparison(frame)
    methods = spec.methods()
    fig, axes = plt.subplots(1, len(spec.models) + 1, figsize=(4.3 * (len(spec.models) + 1),
                                                               4.6), squeeze=False)
    for ax, model in zip(axes[0], spec.models):
        c = comp[comp.model == model].set_index("method").reindex(methods)
        y = range(len(methods))
        ax.barh(y, 100 * c.test_error, xerr=100 * c.test_error_std.fillna(0),
                color=[colour(m) for m in methods],
                hatch=None, alpha=0.85, error_kw={"lw": 0.8})
        for i, m in enumerate(methods):
            if m.endswith(":recommended"):
                ax.patches[i].set_hatch("//")
        ax.set_yticks(list(y), [TITLES[m] for m in methods], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("test error (%), mean ± std over seeds")
        if c.test_error.max() > 5 * c.test_error.min():  # one failed method would hide the rest
            ax.set_xscale("log")
            ax.set_xlabel("test error (%, log scale), mean ± std over seeds")
        ax.set_title(f"{MODEL_TITLES.get(model, model)}, {spec.epochs[model]} epoch(s)",
                     fontsize=9)
        ax.grid(alpha=0.3, lw=0.5, axis="x")
    ax = axes[0, -1]
    plot_scale_sensitivity(scale_frame(frame, spec.scale_model), ax, COLOURS | {
        m: colour(m) for m in methods}, TITLES)
    ax.set_yscale("log")
    ax.set_title(f"{MODEL_TITLES.get(spec.scale_model)}: own initial scale × 10^k", fontsize=9)
    # beside the panel: inside it, the legend would cover the curves that leave at large scales
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"Learning-rate-free optimizers vs HD on {spec.data.name} "
                 f"({spec.data.fraction:.0%}), {len(spec.seeds)} seed(s); hatched: the authors' "
                 "recommended setting", fontsize=9)
    return save_figure(fig, figures, "rivals.png")


if __name__ == "__main__":
    run_main(main)
