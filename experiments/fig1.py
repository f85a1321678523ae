"""Figure 1: α_t, training loss and validation loss of SGD, SGDN, Adam and their HD versions.

Claim (Baydin et al. 2018, Figure 2; the reproducibility report, Figure 1): at the same α₀ the HD
variants reach lower training and validation loss than their base optimizers; α_t rises early,
then decays toward a small value (Adam-HD's smoothly).
Setup (docs/report/setups.md): MNIST, batch 128, α₀ = 1e-3 for all, β = 1e-3 (SGD-HD, SGDN-HD) and
1e-7 (Adam-HD), μ = 0.9 (Nesterov), weight decay 1e-4 for every method, validation = test set.
The multiplicative-rule companion uses β = 1e-2 (our choice; the papers give no value).
Profiles: smoke 2% of MNIST, 1 epoch, 1 seed (~20 s); quick the report's 10% (first 6,000/1,000),
LogReg 10, MLNN 5, BetterCNN 5 epochs, seeds 1-3 (~5 min on 2 cores); full all of MNIST, LogReg 20,
MLNN 100, BetterCNN 100 epochs (+ VGG-16/CIFAR-10 for 200 when CIFAR-10 is present), seeds 1-5,
so that every base-vs-HD pair is judged on 5 paired seeds (estimated from the rivals' 10-14 s per
MLNN/BetterCNN epoch: about 15 hours with 2 worker processes on 2 CPU cores; minutes on a GPU).
The runs go through the grid executors (--executor processes --workers N) and are stored run by
run, model by model and seed by seed, so a killed run resumes and the report can show the models
finished so far.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from grid_common import (begin_run_info, run_options, run_parser, save_figure,  # noqa: E402
                         stamp_figures, write_run_info)

from hdrepro.cli_help import run_main  # noqa: E402
from hdrepro.config import config_id  # noqa: E402
from hdrepro.engine.data import DataConfig, DataUnavailable, default_data_root, load  # noqa: E402
from hdrepro.report.plots import LOSS_CAP, plot_fig1  # noqa: E402
from hdrepro.engine.results import RunStore  # noqa: E402
from hdrepro.engine.cells import LoggedRun, run_logged  # noqa: E402
from hdrepro.methods.registry import OptimConfig  # noqa: E402
from hdrepro.engine.train import TrainConfig  # noqa: E402


@dataclass(frozen=True)
class Profile:
    fraction: float
    epochs: dict
    seeds: tuple
    log_every: int = 1
    vgg: str = "vgg16bn-narrow"


PROFILES = {
    "smoke": Profile(0.02, {"logreg": 1, "mlnn": 1, "bettercnn": 1}, (1,), vgg="vgg16bn-narrow"),
    "quick": Profile(0.1, {"logreg": 10, "mlnn": 5, "bettercnn": 5}, (1, 2, 3),
                     vgg="vgg16bn-narrow"),
    # full: an iteration row every 100 steps (its loss the mean over them, about a fifth of an
    # epoch), so that 81 runs of up to 46,900 steps stay a few MB of CSV
    "full": Profile(1.0, {"logreg": 20, "mlnn": 100, "bettercnn": 100}, (1, 2, 3, 4, 5),
                    log_every=100, vgg="vgg16bn"),
}
VGG_EPOCHS = {"smoke": 1, "quick": 5, "full": 200}
MODELS = sorted({*PROFILES["full"].epochs, *(p.vgg for p in PROFILES.values())})
ALPHA0 = 1e-3
BETA = {"sgd-hd": 1e-3, "sgdn-hd": 1e-3, "adam-hd": 1e-7}
BETA_VGG_ADAM = 1e-8
BETA_MULTIPLICATIVE = 1e-2
ORDER = ["SGD", "SGD-HD", "SGDN", "SGDN-HD", "Adam", "Adam-HD"]


def optimizers(rule: str, model: str) -> list[OptimConfig]:
    out = []
    for base, hd in (("sgd", "sgd-hd"), ("sgdn", "sgdn-hd"), ("adam", "adam-hd")):
        beta = BETA_MULTIPLICATIVE if rule == "multiplicative" else BETA[hd]
        if hd == "adam-hd" and model.startswith("vgg") and rule == "additive":
            beta = BETA_VGG_ADAM
        out += [OptimConfig(base, ALPHA0), OptimConfig(hd, ALPHA0, beta, rule=rule)]
    return out


def run_id(cfg: TrainConfig, rule: str) -> str:
    return f"{cfg.model}/{cfg.optim.label}/{rule}/seed{cfg.seed}/{config_id(cfg)[:8]}"


def plan(profile: str, root: Path) -> list[LoggedRun]:
    """Every run of the profile, model by model and seed by seed, so that a run cut off part way
    leaves whole seeds of the first models (what the report can show)."""
    p = PROFILES[profile]
    mnist = DataConfig("mnist", p.fraction)
    models = [(m, mnist, e) for m, e in p.epochs.items()]
    try:
        load(DataConfig("cifar10", p.fraction), root)
        models.append((p.vgg, DataConfig("cifar10", p.fraction), VGG_EPOCHS[profile]))
    except DataUnavailable:
        pass  # the VGG/CIFAR-10 column appears only when CIFAR-10 is present
    runs = []
    for model, data, epochs in models:
        for seed in p.seeds:
            for rule in ("additive", "multiplicative"):
                for opt in optimizers(rule, model):
                    if rule == "multiplicative" and not opt.name.endswith("-hd"):
                        continue  # the bases are the same runs as in the additive figure
                    cfg = TrainConfig(model, data, opt, epochs, seed=seed,
                                      log_every=p.log_every, progress=False)
                    labels = (("model", model), ("optimizer", opt.label), ("rule", rule),
                              ("seed", seed), ("alpha0", opt.lr), ("beta", opt.hypergrad_lr))
                    runs.append(LoggedRun(run_id(cfg, rule), labels, cfg))
    return runs


def draw(store: RunStore, runs: list[LoggedRun], figures: Path) -> list[Path]:
    """Both rules' figures from the stored runs of the profile (saying so when some are missing)."""
    ids = {r.run_id for r in runs}
    iters, epochs = (store.load(kind) for kind in ("iterations", "epochs"))
    if iters.empty:
        return []  # nothing stored yet
    iters, epochs = iters[iters.run_id.isin(ids)], epochs[epochs.run_id.isin(ids)]
    final = store.load("final")
    diverged = final[final.run_id.isin(ids) & final.diverged.astype(bool)]
    stored = len(ids & set(final.run_id))  # load() keeps only finished runs
    partial = f"; partial: {stored} of {len(ids)} runs" if stored < len(ids) else ""
    models = [m for m in ("logreg", "mlnn", "bettercnn", "vgg16bn-narrow", "vgg16bn")
              if m in set(iters.model)]
    written = []
    for rule, name in (("additive", "fig1_hd.png"), ("multiplicative", "fig1_hd_multiplicative.png")):
        # the base optimizers' runs (stored under "additive") appear in both rules' figures
        it, ep, lost = (f[f.optimizer.isin(["SGD", "SGDN", "Adam"]) | (f.rule == rule)]
                        for f in (iters, epochs, diverged))
        fig, axes = plt.subplots(3, len(models), figsize=(4.2 * len(models), 9), squeeze=False,
                                 sharex="col")
        plot_fig1(it, ep, models, ORDER, axes, lost)
        fig.suptitle(f"HD ({rule} rule) vs base optimizers, α₀ = {ALPHA0:g}\nmean of "
                     f"{it.seed.nunique()} seed(s), band = min-max; losses above "
                     f"{LOSS_CAP:g} drawn at {LOSS_CAP:g}{partial}", fontsize=10)
        written.append(save_figure(fig, figures, name, rect=(0, 0.03, 1, 1)))  # the legend below
    return written


def unranged(store: RunStore, runs: list[LoggedRun], models: list[str]) -> set[str]:
    """The stored HD runs of `models` whose iteration rows hold α_t's samples only, logged before
    α's range between rows (alpha_min, alpha_max) was: their peaks may lie between rows."""
    iters = store.load("iterations")
    if iters.empty:
        return set()
    ranged = (set(iters.loc[iters["alpha_max"].notna(), "run_id"]) if "alpha_max" in iters
              else set())
    sampled = set(iters.run_id) - ranged
    return {r.run_id for r in runs if r.config.model in models
            and r.config.optim.name.endswith("-hd") and r.run_id in sampled}


def main(argv=None):
    parser = run_parser(__doc__, PROFILES)
    parser.add_argument("--relog-alpha-range", nargs="+", default=[], metavar="MODEL",
                        choices=MODELS,
                        help="rerun the stored HD runs of these models that were logged before "
                             "α's range between rows was (so their α_t peaks are seen)")
    args = parser.parse_args(argv)
    out = args.out or Path("results") / args.profile
    store = RunStore(out, "fig1")
    root = args.data or default_data_root()
    runs = plan(args.profile, root)
    if not args.plot_only:
        with store.writing():   # one writer per store, its run record included
            # each rerun replaces its earlier rows as it ends: a kill leaves every run stored
            redo = frozenset(unranged(store, runs, args.relog_alpha_range))
            per_model = dict(Counter(r.config.model for r in runs))  # the report's partial check
            t0, todo = begin_run_info(out / "fig1_run.json", runs, store, args,
                                      runs_per_model=per_model)
            # the claims are judged on the additive rule's runs: those are rerun first
            first = sorted(runs, key=lambda r: r.run_id in redo
                           and dict(r.labels)["rule"] != "additive")
            run_logged(first, store, run_options(args, root), "fig1 runs", redo)
            write_run_info(out / "fig1_run.json", t0, len(runs), args,
                           cells_run=todo + len(redo), runs_per_model=per_model)
    stamp_figures(draw(store, runs, args.figures), "fig1", args, out)


if __name__ == "__main__":
    run_main(main)
