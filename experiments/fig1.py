"""Figure 1: α_t, training loss and validation loss of SGD, SGDN, Adam and their HD versions.

Claim (Baydin et al. 2018, Figure 2; the reproducibility report, Figure 1): at the same α₀ the HD
variants reach lower training and validation loss than their base optimizers; α_t rises early,
then settles (Adam-HD's decays smoothly).
Setup (REFERENCE-SETUPS.md): MNIST, batch 128, α₀ = 1e-3 for all, β = 1e-3 (SGD-HD, SGDN-HD) and
1e-7 (Adam-HD), μ = 0.9 (Nesterov), weight decay 1e-4 for every method, validation = test set.
The multiplicative-rule companion uses β = 1e-2 (our choice; the papers give no value).
Profiles: smoke 2% of MNIST, 1 epoch, 1 seed (~20 s); quick the report's 10% (first 6,000/1,000),
LogReg 10, MLNN 5, BetterCNN 5 epochs, seeds 1-3 (~5 min on 2 cores); full all of MNIST, LogReg 20,
MLNN 100, BetterCNN 100 epochs (+ VGG-16/CIFAR-10 for 200 when CIFAR-10 is present), seeds 1-3.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from hdrepro.data import DataConfig, DataUnavailable, default_data_root, load  # noqa: E402
from hdrepro.figures import FigureOrigin, stamp  # noqa: E402
from hdrepro.plots import LOSS_CAP, plot_fig1  # noqa: E402
from hdrepro.results import RunStore  # noqa: E402
from hdrepro.train import OptimConfig, TrainConfig, train  # noqa: E402


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
    "full": Profile(1.0, {"logreg": 20, "mlnn": 100, "bettercnn": 100}, (1, 2, 3), log_every=10,
                    vgg="vgg16bn"),
}
VGG_EPOCHS = {"smoke": 1, "quick": 5, "full": 200}
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
    digest = hashlib.sha1(json.dumps(asdict(cfg), sort_keys=True, default=str).encode())
    return f"{cfg.model}/{cfg.optim.label}/{rule}/seed{cfg.seed}/{digest.hexdigest()[:8]}"


def plan(profile: str, root: Path) -> list[tuple[TrainConfig, str]]:
    p = PROFILES[profile]
    mnist = DataConfig("mnist", p.fraction)
    models = [(m, mnist, e) for m, e in p.epochs.items()]
    try:
        load(DataConfig("cifar10", p.fraction), root)
        models.append((p.vgg, DataConfig("cifar10", p.fraction), VGG_EPOCHS[profile]))
    except DataUnavailable:
        pass  # the VGG/CIFAR-10 column appears only when CIFAR-10 is present
    runs = []
    for rule in ("additive", "multiplicative"):
        for model, data, epochs in models:
            for opt in optimizers(rule, model):
                if rule == "multiplicative" and not opt.name.endswith("-hd"):
                    continue  # the bases are the same runs as in the additive figure
                for seed in p.seeds:
                    cfg = TrainConfig(model, data, opt, epochs, seed=seed,
                                      log_every=p.log_every, progress=False)
                    runs.append((cfg, rule))
    return runs


def run(profile: str, out: Path, figures: Path, root: Path) -> list[Path]:
    store = RunStore(out, "fig1")
    done = store.finished()
    todo = [(c, r) for c, r in plan(profile, root) if run_id(c, r) not in done]
    cache: dict = {}
    for cfg, rule in tqdm(todo, desc="fig1 runs"):
        if cfg.data not in cache:
            cache = {cfg.data: load(cfg.data, root)}  # keep one data set in memory at a time
        result = train(cfg, cache[cfg.data])
        store.append(run_id(cfg, rule), {"model": cfg.model, "optimizer": cfg.optim.label,
                                         "rule": rule, "seed": cfg.seed,
                                         "alpha0": cfg.optim.lr,
                                         "beta": cfg.optim.hypergrad_lr}, result)
    return draw(store, figures)


def draw(store: RunStore, figures: Path) -> list[Path]:
    iters, epochs = store.load("iterations"), store.load("epochs")
    models = [m for m in ("logreg", "mlnn", "bettercnn", "vgg16bn-narrow", "vgg16bn")
              if m in set(iters.model)]
    written = []
    for rule, name in (("additive", "fig1_hd.png"), ("multiplicative", "fig1_hd_multiplicative.png")):
        base = iters.optimizer.isin(["SGD", "SGDN", "Adam"])
        it = iters[base | (iters.rule == rule)]
        ep = epochs[epochs.optimizer.isin(["SGD", "SGDN", "Adam"]) | (epochs.rule == rule)]
        fig, axes = plt.subplots(3, len(models), figsize=(4.2 * len(models), 9), squeeze=False,
                                 sharex="col")
        plot_fig1(it, ep, models, ORDER, axes)
        fig.suptitle(f"HD ({rule} rule) vs base optimizers, α₀ = {ALPHA0:g}; mean of "
                     f"{it.seed.nunique()} seed(s), band = min-max; losses above "
                     f"{LOSS_CAP:g} drawn at {LOSS_CAP:g}", fontsize=10)
        fig.tight_layout()
        figures.mkdir(parents=True, exist_ok=True)
        fig.savefig(figures / name, dpi=100)
        plt.close(fig)
        written.append(figures / name)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    ap.add_argument("--out", type=Path, default=None,
                    help="results folder (default results/<profile>)")
    ap.add_argument("--figures", type=Path, default=Path("figures"))
    ap.add_argument("--data", type=Path, default=None,
                    help="data folder (default $HDREPRO_DATA or <repo>/data)")
    ap.add_argument("--plot-only", action="store_true", help="redraw from saved results")
    args = ap.parse_args(argv)
    out = args.out or Path("results") / args.profile
    if args.plot_only:
        written = draw(RunStore(out, "fig1"), args.figures)
    else:
        written = run(args.profile, out, args.figures, args.data or default_data_root())
    made = FigureOrigin.of_driver("plot", "fig1", args.profile, out, args.figures)
    for path in written:
        print(f"wrote {stamp(path, made)}")


if __name__ == "__main__":
    main()
