"""Do the modern hypergradient methods remove HD's divergences where the grids are contested?

The α₀ × β grids lose many SGD-HD runs on the MLNN and BetterCNN at large β (§2). This study
runs the same models, data and batch as those grids over that region, α₀ ∈ {1e-4, 1e-3, 1e-2} ×
each method's own hyper-rate ∈ {1e-3, 1e-2, 1e-1}, over several seeds, for three methods that
learn plain SGD's step size:

- SGD-HD (Baydin et al.), the additive rule, rate β;
- MARTHE with its automatic μ (Donini et al.), rate β (μ = 0 would be SGD-HD itself);
- HDM with a diagonal stepsize and heavy-ball momentum (Chu et al.), P₀ = α₀, AdaGrad rate η;

and plain SGD at each α₀, the row every method starts from. The runs are shorter than the
grids' 100 epochs, because SGD-HD's divergences there happen early (REPORT.md counts how many
of the grids' fall within this budget), and every method here gets the same budget on the same
device.

A run is *lost* when it diverged (NaN/inf) or ended stuck at chance: a test error of at least
``STUCK_ERROR`` (85%; a 10-class model that learnt nothing, as the sensitivity study counts).
A run whose α was driven to nothing ends there as surely as one that blew up. :func:`losses`
gives each method's lost share with Wilson's 95% interval, :func:`against_hd` the difference
from SGD-HD's share with Newcombe's interval, judged by :func:`hdrepro.studies.stats.judge`
(fewer, more, or a tie).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import stats
from ..config import check_fields
from ..engine.data import DataConfig
from ..engine.cells import RunCell, with_lost
from ..methods.registry import OptimConfig, title

METHODS = ("sgd-hd", "marthe", "hdm")
#: the setting each method runs at here, after its registry title
SETTING = {"marthe": "auto μ", "hdm": "diagonal, heavy ball"}
NAMES = {m: title(m) + (f" ({SETTING[m]})" if m in SETTING else "") for m in ("sgd", *METHODS)}
#: what each method's hyper-rate is called
RATE_SYMBOL = {"sgd-hd": "β", "marthe": "β", "hdm": "η"}
VERDICTS = {"better": "fewer lost runs", "worse": "more lost runs", "tie": "a tie"}


@dataclass(frozen=True)
class ContestedSpec:
    """models × methods × α₀ × hyper-rate × seeds, and SGD at each α₀ × seeds."""
    models: tuple[str, ...] = ("mlnn", "bettercnn")
    methods: tuple[str, ...] = METHODS
    alphas: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
    rates: tuple[float, ...] = (1e-3, 1e-2, 1e-1)
    epochs: int = 15
    data: DataConfig = DataConfig("mnist", 0.1)
    seeds: tuple[int, ...] = (1, 2, 3)

    def __post_init__(self):
        check_fields(self)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"Unknown methods {unknown}; choose some of {list(METHODS)}")
        if not (self.models and self.methods and self.alphas and self.rates and self.seeds):
            raise ValueError("The study needs some models, methods, α₀, rates and seeds")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1 (got {self.epochs})")

    def cells(self) -> list[RunCell]:
        """Seed by seed, so that a study cut short has whole seeds."""
        out = []
        for seed in self.seeds:
            for model in self.models:
                out += [self._cell(model, OptimConfig("sgd", a), seed) for a in self.alphas]
                out += [self._cell(model, OptimConfig(m, a, r), seed)
                        for m in self.methods for r in self.rates for a in self.alphas]
        return out

    def _cell(self, model: str, optim: OptimConfig, seed: int) -> RunCell:
        return RunCell("contested", model, self.data, optim, self.epochs, seed,
                       tags=(("method", optim.name),))


def losses(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model and method: runs, diverged, stuck, and the lost share with its interval."""
    rows = []
    for (model, method), g in with_lost(frame).groupby(["model", "method"], sort=False):
        share = stats.proportion(int(g["lost"].sum()), len(g))
        rows.append({"model": model, "method": method, "runs": len(g),
                     "diverged": int(g["diverged"].sum()), "stuck": int(g["stuck"].sum()),
                     "lost_runs": int(g["lost"].sum()), "lost": share})
    return pd.DataFrame(rows)


def against_hd(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model and modern method: its lost share minus SGD-HD's, with Newcombe's interval,
    and the verdict (VERDICTS; lower is better)."""
    table = losses(frame)
    rows = []
    for model, g in table.groupby("model", sort=False):
        hd = g[g.method == "sgd-hd"]
        if hd.empty:
            continue
        base = hd.iloc[0]
        for r in g[~g.method.isin(["sgd", "sgd-hd"])].itertuples():
            diff = stats.proportion_difference(r.lost_runs, r.runs, base["lost_runs"],
                                               base["runs"])
            rows.append({"model": model, "method": r.method, "difference": diff,
                         "verdict": VERDICTS[stats.judge(diff)]})
    return pd.DataFrame(rows)


def best_losses(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model, method and seed: the lowest final training loss over the method's cells (the
    grids' measure; lost runs left out), and how many of its cells were kept."""
    f = with_lost(frame)
    kept = f[~f["lost"]]
    best = (kept.groupby(["model", "method", "seed"], as_index=False, sort=False)
                .agg(best_train_loss=("train_loss", "min"), kept=("train_loss", "size")))
    return best


def early_share(grid: pd.DataFrame, epochs: int) -> stats.Interval:
    """Of SGD-HD's diverged runs in a grid store (additive rule, β fixed), the share that
    diverged within the first `epochs` epochs: how much of the grids' divergence a study of
    that many epochs can see."""
    f = grid[(grid["optimizer"] == "sgd-hd") & (grid["rule"] == "additive")
             & (grid["gamma"] == 0) & grid["diverged"].astype(bool)]
    if f.empty:
        return stats.proportion(0, 0)
    per_epoch = -(-f["n_train"] // f["batch_size"])    # ceil: the last batch is partial
    return stats.proportion(int((f["diverged_at"] <= epochs * per_epoch).sum()), len(f))


def recommendation(verdicts: pd.DataFrame) -> tuple[str | None, str]:
    """From :func:`against_hd`: the method that lost fewer runs than SGD-HD on every model
    (the lower pooled difference when both did), or None; and whether the others tied or lost
    more ("tie" / "worse" / "mixed") for the sentence that says why none was chosen."""
    if verdicts.empty:
        return None, "untested"
    fewer = verdicts.groupby("method")["verdict"].agg(lambda v: (v == VERDICTS["better"]).all())
    winners = [m for m, ok in fewer.items() if ok]
    if winners:
        mean_diff = verdicts.assign(d=verdicts.difference.map(lambda i: i.estimate)) \
            .groupby("method")["d"].mean()
        return min(winners, key=lambda m: mean_diff[m]), "better"
    worse = (verdicts.verdict == VERDICTS["worse"]).any()
    ties = (verdicts.verdict == VERDICTS["tie"]).any()
    return None, "mixed" if worse and ties else "worse" if worse else "tie"
