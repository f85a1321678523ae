r"""The clipping report's experiment: stacks <primary>/SGD(α) with and without norm-based averaged
clipping of the hypergradients (its Tables 1-5), and the ablations that tell clipping from a
halved secondary rate.

A cell is one training run: table × network × variant × secondary α × seed. The variants:

- ``baseline``: the primary alone (no level above), the tables' "Baseline with … alone".
- ``none``: <primary>/SGD(α), no clipping.
- ``clip``: clipping as the report's *code* does it: the first, all-zero hypergradient counts in
  the running average, so under constant norms the factor is exactly 0.5.
- ``clip-pseudo``: clipping as its *pseudo-code* states it: the average runs over the non-zero
  hypergradients only.
- ``half``: no clipping, secondary rate α/2: what the code's clipping amounts to when norms are
  steady.

Every level has the conventions of Chandra et al.'s package (:func:`hdrepro.autodiff.chandra`),
which the report ran: all of the primary's hyperparameters are learned (Adam α, β₁, β₂; RMSProp
α, γ), through the package's stored forms. Cells run on the executors of :mod:`hdrepro.studies.grids` and
are stored one JSON line each (:class:`hdrepro.engine.results.GridStore`), so a killed run resumes.
MNIST pixels are fed in [0, 1], unstandardised, as in Chandra et al.'s example that the report
followed (``StackCell.pixels``); Table 5's images are standardised per channel, as it says.

A diverged run (NaN/inf loss) is stored as such; its test error is taken as that of the NaN
network, whose argmax is class 0 everywhere (1 - share of class 0 in the test set: 90.2% on
MNIST). That is what the report's code measured for its "90%" rows.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd
import torch

from . import stats
from ..config import check_fields
from ..engine.cells import Identified, run_cells
from ..engine.data import Data, DataConfig, unit_pixels
from ..engine.executors import RunOptions, provenance_columns, run_pending, worker_data
from ..engine.results import GridStore
from ..methods.registry import OptimConfig
from ..engine.train import TrainConfig, train

VARIANTS = ("baseline", "none", "clip", "clip-pseudo", "half")
ABLATIONS = ("clip-pseudo", "half")
#: a clipping effect counts when the mean test error moves by at least this (the report's bold
#: rule: "reduced average test error by at least 1%", read as 1 percentage point)
EFFECT = 0.01


@dataclass(frozen=True)
class Published:
    """One of the report's tables: test error (%) per secondary α, without and with clipping."""
    number: int
    stack: str            # "<primary>/sgd"
    dataset: str          # what the report trained on
    epochs: int
    baseline: float       # the primary alone, %
    rows: tuple[tuple[float, float, float], ...]   # (α, no clipping, clipping), %

    @property
    def primary(self) -> str:
        return self.stack.split("/")[0]

    @property
    def alphas(self) -> tuple[float, ...]:
        return tuple(r[0] for r in self.rows)


#: Tables 1-5 of the clipping report, as printed (mean of 3 trials).
PUBLISHED = {
    "sgd": Published(1, "sgd/sgd", "mnist", 30, 8.96, (
        (0.01, 4.90, 5.06), (0.05, 6.18, 6.04), (0.1, 6.97, 6.68), (0.5, 7.01, 7.27),
        (1, 6.78, 6.91), (5, 5.31, 5.97), (10, 4.72, 5.20), (50, 7.81, 3.91), (75, 38.05, 15.92),
        (100, 25.26, 13.01), (250, 22.75, 40.09), (500, 70.28, 72.26), (1000, 80.43, 58.04))),
    "adam": Published(2, "adam/sgd", "mnist", 5, 4.63, (
        (1e-5, 3.14, 3.23), (5e-5, 3.09, 3.21), (1e-4, 3.05, 3.06), (5e-4, 3.59, 3.20),
        (1e-3, 4.71, 3.35), (5e-3, 35.89, 16.6), (1e-2, 79.57, 23.2), (5e-2, 86.8, 84.27),
        (1e-1, 76.17, 86.44), (5e-1, 83.16, 82.36))),
    "adagrad": Published(3, "adagrad/sgd", "mnist", 30, 7.38, (
        (0.01, 6.92, 6.71), (0.05, 7.02, 7.16), (0.1, 6.75, 7.04), (0.5, 5.70, 5.99),
        (1, 7.86, 5.19), (2.5, 7.34, 4.11), (5, 57.91, 3.49), (7.5, 36.62, 30.33),
        (10, 27.08, 49.9), (50, 64.51, 20.79), (100, 90.19, 49.04))),
    "rmsprop": Published(4, "rmsprop/sgd", "mnist", 5, 3.91, (
        (1e-5, 4.43, 4.26), (5e-5, 3.47, 3.84), (1e-4, 3.36, 3.55), (5e-4, 4.26, 3.75),
        (1e-3, 5.16, 4.86), (5e-3, 6.16, 6.12), (1e-2, 6.36, 6.52), (2.5e-2, 88.80, 6.14),
        (5e-2, 90.66, 9.72), (7.5e-2, 90.03, 90.03), (1e-1, 89.17, 64.56), (5e-1, 90.2, 90.02))),
    # Printed in this order: 2.5e-3 and 5e-3 stand between 1e-4 and 1e-3 (perhaps 2.5e-4, 5e-4).
    "cnn": Published(5, "adam/sgd", "cifar10", 5, 39.65, (
        (1e-9, 39.26, 39.87), (1e-8, 38.76, 39.12), (1e-7, 40.02, 39.26), (1e-6, 42.17, 40.01),
        (1e-5, 45.95, 43.52), (1e-4, 46.96, 43.99), (2.5e-3, 89.82, 90.49), (5e-3, 90.00, 90.00),
        (1e-3, 90.00, 73.88), (1e-2, 90.00, 90.00))),
}
#: Table 5, the CIFAR-10 CNN: run on Fashion-MNIST here, a stand-in that is no evidence for the
#: report's MNIST claims
STAND_IN = "cnn"
#: the primaries' defaults in the report (SGD μ = 0; Adam β = 0.9, 0.999; RMSProp γ = 0.99)
PRIMARY_LR = {"sgd": 0.01, "adam": 1e-3, "adagrad": 0.01, "rmsprop": 0.01}
#: the networks: the report's (tanh on the output too, Chandra et al.'s example) and without it;
#: Table 5's CNN for 3×32×32 CIFAR-10, or for 1×28×28 images where Fashion-MNIST stands in
NETS = {"mnist": {"output-tanh": "tanh-mlp", "no-output-tanh": "tanh-mlp-no-output-tanh"},
        "cifar10": {"output-tanh": "clip-cnn"}, "fashion-mnist": {"output-tanh": "clip-cnn-28"}}


@dataclass(frozen=True)
class StackCell(Identified):
    """One training run of the clipping experiment."""
    table: str            # key of PUBLISHED
    net: str              # "output-tanh" (the report's network) or "no-output-tanh"
    variant: str          # one of VARIANTS
    alpha: float          # the secondary SGD's α as swept (0 for the baseline)
    seed: int
    epochs: int
    data: DataConfig
    batch_size: int = 256
    pixels: str = "unit"  # "unit": [0, 1] as Chandra et al.'s example; "standardised": ours

    def __post_init__(self):
        check_fields(self)
        if self.pixels not in ("unit", "standardised"):
            raise ValueError(f"Invalid pixels {self.pixels!r}; choose 'unit' or 'standardised'")
        if self.table not in PUBLISHED or self.variant not in VARIANTS:
            raise ValueError(f"Unknown table {self.table!r} or variant {self.variant!r}; tables "
                             f"{sorted(PUBLISHED)}, variants {VARIANTS}")

    @property
    def model(self) -> str:
        nets = NETS.get(self.data.name, {})
        if self.net not in nets:
            raise ValueError(f"No network {self.net!r} for {self.data.name} (table {self.table!r});"
                             f" networks: {NETS}")
        return nets[self.net]

    def optim_config(self) -> OptimConfig:
        pub = PUBLISHED[self.table]
        if self.variant == "baseline":
            return OptimConfig(f"stack:{pub.primary}", PRIMARY_LR[pub.primary],
                               weight_decay=0.0, conventions="chandra")
        rate = self.alpha / 2 if self.variant == "half" else self.alpha
        clip = {"clip": "code", "clip-pseudo": "pseudo"}.get(self.variant, "none")
        return OptimConfig(f"stack:{pub.stack}", PRIMARY_LR[pub.primary], rate, clip=clip,
                           weight_decay=0.0, conventions="chandra")

    def load(self, root: str) -> Data:
        data = worker_data(self.data, root)
        return unit_pixels(data) if self.pixels == "unit" else data

    def train_config(self, device: str) -> TrainConfig:
        return TrainConfig(self.model, self.data, self.optim_config(), self.epochs,
                           self.batch_size, seed=self.seed, device=device, log_every=10 ** 9,
                           progress=False)

    def labels(self) -> dict:
        d = asdict(self)
        d.update(data=self.data.name, fraction=self.data.fraction, model=self.model,
                 cell_id=self.cell_id)
        return d

    def run(self, device: str, data_root: str) -> dict:
        """Train; a network whose outputs went NaN is scored as argmax scores it (class 0)."""
        data = self.load(data_root)
        res = train(self.train_config(device), data)
        f = res.final
        error = nan_network_error(data.test.y) if f["diverged"] else f["test_error"]
        return {"diverged": f["diverged"], "diverged_at": f["diverged_at"], "test_error": error,
                "train_loss": f["train_loss"], "iterations": f["iterations"],
                "seconds": f["seconds"], **provenance_columns(device, data)}


@dataclass(frozen=True)
class StackSpec:
    """Which tables, α values (None: every α of the published table), networks and seeds."""
    tables: tuple[str, ...]
    seeds: tuple[int, ...] = (1, 2, 3)
    alphas: dict[str, tuple[float, ...]] | None = None
    nets: tuple[str, ...] = ("output-tanh", "no-output-tanh")
    mnist: DataConfig = DataConfig("mnist")
    image: DataConfig = DataConfig("fashion-mnist")   # CIFAR-10 where present
    epochs: dict[str, int] = field(default_factory=dict)   # override the report's epochs
    #: MNIST tables also run with standardised inputs (report's net, with and without clipping)
    standardised: tuple[str, ...] = ()
    #: more trials where a verdict turns on a difference: the rows a verdict reads (the
    #: report's clipping helped, or had no effect) on the report's net, and every ablation row
    #: with its arms; MNIST tables only (Table 5 runs on a stand-in data set, so no verdict is
    #: drawn from it)
    decisive_seeds: tuple[int, ...] = ()

    def __post_init__(self):
        check_fields(self)
        unknown = [t for t in self.tables if t not in PUBLISHED]
        if unknown or not self.seeds:
            raise ValueError(f"Unknown tables {unknown} (choose from {sorted(PUBLISHED)}) or no "
                             "seeds")

    def table_alphas(self, table: str) -> tuple[float, ...]:
        return (self.alphas or {}).get(table, PUBLISHED[table].alphas)

    def _cell(self, table, net, variant, alpha, seed, pixels=None) -> StackCell:
        data = self.image if table == STAND_IN else self.mnist
        epochs = self.epochs.get(table, PUBLISHED[table].epochs)
        return StackCell(table, net, variant, alpha, seed, epochs, data,
                         pixels=pixels or default_pixels(table))

    def nets_of(self, table: str) -> tuple[str, ...]:
        return ("output-tanh",) if table == STAND_IN else self.nets

    def cells(self) -> list[StackCell]:
        """The tables' cells: baseline, and no clipping / clipping at each α. Seeds outermost, so
        that a run stopped early has whole tables with fewer trials."""
        out = []
        for seed in self.seeds:
            for table in self.tables:
                settings = [(net, None) for net in self.nets_of(table)]
                if table in self.standardised and table != STAND_IN:
                    settings.append(("output-tanh", "standardised"))
                for net, pixels in settings:
                    out.append(self._cell(table, net, "baseline", 0.0, seed, pixels))
                    out += [self._cell(table, net, v, a, seed, pixels)
                            for a in self.table_alphas(table) for v in ("none", "clip")]
        for seed in self.decisive_seeds:
            for table in (t for t in self.tables if t != STAND_IN):
                out += [self._cell(table, "output-tanh", v, a, seed)
                        for a in self.judged(table) for v in ("none", "clip")]
        return list(dict.fromkeys(out))

    def judged(self, table: str) -> tuple[float, ...]:
        """The α of this spec whose row a verdict reads: the report's clipping helped by
        ≥ EFFECT (the rows it bolds) or changed the error by less (the "no effect" rows); the
        few rows where it hurt back no claim."""
        return tuple(a for a, none, clip in PUBLISHED[table].rows if a in self.table_alphas(table)
                     and conclusion(none / 100, clip / 100) in ("helps", "no effect"))

    def ablation_cells(self, frame: pd.DataFrame) -> list[StackCell]:
        """Pseudo-code clipping and the halved rate on the rows where the code's clipping
        lowered our mean test error by at least EFFECT; at the decisive seeds (MNIST rows) no
        clipping and clipping too, so that the extra trials pair. Seeds outermost, so that a run
        stopped early leaves every row with the same trials."""
        rows = [(t, n, a) for t, n, a in helped_rows(frame) if t in self.tables]
        out = []
        for s in self.seeds + self.decisive_seeds:
            for t, n, a in rows:
                decisive = s in self.decisive_seeds and t != STAND_IN
                if s in self.seeds or decisive:
                    variants = ABLATIONS + (("none", "clip") if decisive else ())
                    out += [self._cell(t, n, v, a, s) for v in variants]
        return list(dict.fromkeys(out))


# -- running ---------------------------------------------------------------------------------------
def nan_network_error(labels: torch.Tensor) -> float:
    """Test error of a network whose outputs are NaN: argmax returns class 0 everywhere."""
    return 1.0 - float((labels == 0).double().mean())


def run(spec: StackSpec, store: GridStore, options: RunOptions) -> pd.DataFrame:
    """The tables' cells, then the ablations on the rows where clipping helped; resumable."""
    for phase, make in (("tables", spec.cells), ("ablations", lambda: spec.ablation_cells(
            store.frame()))):
        run_pending(make(), run_cells, store, options, f"stacks {phase}")
    return store.frame()


# -- summaries -------------------------------------------------------------------------------------
def default_pixels(table: str) -> str:
    """MNIST as Chandra et al.'s example feeds it ([0, 1]); Table 5 standardised per channel, as
    the report says it did for CIFAR-10."""
    return "standardised" if table == STAND_IN else "unit"


def _pixels(frame: pd.DataFrame, pixels: str | None) -> pd.DataFrame:
    """The rows with the given inputs (None: each table's default inputs)."""
    if frame.empty:
        return frame
    want = frame.table.map(default_pixels) if pixels is None else pixels
    return frame[frame.pixels == want]


def means(frame: pd.DataFrame, pixels: str | None = None) -> pd.DataFrame:
    """Mean test error over seeds per (table, net, variant, α), with trials and divergences, of
    the rows with the given inputs (None: each table's default)."""
    return _mean_rows(_pixels(frame, pixels))


def _mean_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`means` of runs already selected by their inputs."""
    keys = ["table", "net", "variant", "alpha"]
    return (runs.groupby(keys).agg(error=("test_error", "mean"), trials=("seed", "nunique"),
                                   diverged=("diverged", "sum"))
            .reset_index())


def _table_runs(frame: pd.DataFrame, table: str, net: str, pixels: str | None) -> pd.DataFrame:
    """The runs of one table and net, with the given inputs (None: the table's default)."""
    return _pixels(frame[(frame.table == table) & (frame.net == net)], pixels)


def single_trials(frame: pd.DataFrame, table: str, net: str = "output-tanh",
                  pixels: str | None = None) -> pd.DataFrame:
    """The single trials behind :func:`comparison`'s means: one row per run without and with
    clipping (α, variant, seed, test error), with the given inputs (None: the table's default)."""
    runs = _table_runs(frame, table, net, pixels)
    return runs[runs.variant.isin(["none", "clip"])][["alpha", "variant", "seed", "test_error"]]


def conclusion(no_clip: float, clip: float) -> str:
    """What clipping did to the mean test error: helps, hurts, or no effect (within EFFECT)."""
    if any(map(math.isnan, (no_clip, clip))):
        return "n/a"
    if no_clip - clip >= EFFECT - 1e-12:
        return "helps"
    if clip - no_clip >= EFFECT - 1e-12:
        return "hurts"
    return "no effect"


def paired_effect(runs: pd.DataFrame, a: str = "none", b: str = "clip") -> stats.Interval:
    """`runs`: one row's runs (table, net, α, inputs). The per-trial difference of test error
    err_a(s) − err_b(s) over the seeds both variants ran (positive: `b` lowered the error), with
    a 95% t interval: trials of one seed share initial weights and minibatch order."""
    wide = runs.pivot_table(index="seed", columns="variant", values="test_error")
    if a not in wide or b not in wide:
        return stats.Interval(math.nan, math.nan, math.nan, 0)
    both = wide[[a, b]].dropna()
    return stats.paired_difference(both[a], both[b], resolution=stats.error_step(runs))


def effect_outcome(effect: stats.Interval) -> str:
    """A row's verdict from its paired effect e = err_none − err_clip: "helps" when the 95%
    interval lies above 0 and e ≥ EFFECT, "hurts" when it lies below 0 and e ≤ −EFFECT,
    "no effect" when the whole interval lies within ±EFFECT, and "inconclusive" otherwise: the
    trials' spread exceeds the difference (one trial has no spread, so it is inconclusive)."""
    lo, hi, e = effect.low, effect.high, effect.estimate
    if any(map(math.isnan, (lo, hi, e))) or effect.n < 2:
        return "inconclusive"
    if lo > 0 and e >= EFFECT - 1e-12:
        return "helps"
    if hi < 0 and e <= -EFFECT + 1e-12:
        return "hurts"
    if -EFFECT < lo and hi < EFFECT:
        return "no effect"
    return "inconclusive"


def helped_rows(frame: pd.DataFrame) -> list[tuple[str, str, float]]:
    """(table, net, α) where the code's clipping lowered our mean test error by ≥ EFFECT."""
    return [] if frame.empty else _helped(_wide(means(frame)))


def _helped(wide: pd.DataFrame) -> list[tuple[str, str, float]]:
    """:func:`helped_rows` of mean errors already laid out one column per variant."""
    if not {"none", "clip"} <= set(wide.columns):
        return []
    hit = wide[[conclusion(a, b) == "helps" for a, b in zip(wide["none"], wide["clip"])]]
    return [tuple(i) for i in hit.index]


def _wide(m: pd.DataFrame, values: str = "error") -> pd.DataFrame:
    return m[m.variant != "baseline"].pivot_table(index=["table", "net", "alpha"],
                                                  columns="variant", values=values)


def comparison(frame: pd.DataFrame, table: str, net: str = "output-tanh",
               pixels: str | None = None) -> pd.DataFrame:
    """Per published α: the report's errors beside ours (fractions, not %), each side's
    conclusion, and our baseline."""
    pub = PUBLISHED[table]
    runs = _table_runs(frame, table, net, pixels)
    m = _mean_rows(runs)
    ours = _wide(m) if not m.empty else pd.DataFrame()
    trials = _wide(m, "trials") if not m.empty else pd.DataFrame()
    rows = []
    for a, theirs_none, theirs_clip in pub.rows:
        key = (table, net, a)
        get = (lambda v: float(ours.loc[key, v]) if key in ours.index and v in ours.columns
               and not pd.isna(ours.loc[key, v]) else math.nan)
        none, clip = get("none"), get("clip")
        if math.isnan(none) or math.isnan(clip):  # a row counts once both sides have run
            continue
        effect = paired_effect(runs[runs.alpha == a])
        rows.append({"alpha": a, "report_none": theirs_none / 100, "report_clip": theirs_clip / 100,
                     "ours_none": none, "ours_clip": clip,
                     "trials": int(trials.loc[key, ["none", "clip"]].min()),
                     "effect": effect,
                     "report_says": conclusion(theirs_none / 100, theirs_clip / 100),
                     "we_say": effect_outcome(effect)})
    out = pd.DataFrame(rows)
    if not out.empty:
        out["agree"] = out.report_says == out.we_say
    return out


def baseline_error(frame: pd.DataFrame, table: str, net: str = "output-tanh",
                   pixels: str | None = None) -> float:
    sel = _pixels(frame, pixels)
    sel = sel[(sel.table == table) & (sel.net == net) & (sel.variant == "baseline")]
    return float(sel.test_error.mean()) if len(sel) else math.nan


def ablation(frame: pd.DataFrame) -> pd.DataFrame:
    """On each row where clipping helped: no clipping, code clipping, pseudo-code clipping, α/2,
    and which of the two explanations the row supports."""
    runs = _pixels(frame, None)
    wide = _wide(_mean_rows(runs))
    rows = []
    for key in _helped(wide):
        r = wide.loc[key]
        if any(v not in r.index or pd.isna(r[v]) for v in ABLATIONS):
            continue
        row_runs = runs[(runs.table == key[0]) & (runs.net == key[1]) & (runs.alpha == key[2])]
        effects = {v: paired_effect(row_runs, "none", v) for v in ("clip", *ABLATIONS)}
        rows.append({"table": key[0], "net": key[1], "alpha": key[2], "none": r["none"],
                     "clip": r["clip"], "clip_pseudo": r["clip-pseudo"], "half": r["half"],
                     "trials": min(e.n for e in effects.values()),
                     "clip_effect": effects["clip"], "pseudo_effect": effects["clip-pseudo"],
                     "half_effect": effects["half"],
                     "clip_says": effect_outcome(effects["clip"]),
                     "pseudo_says": effect_outcome(effects["clip-pseudo"]),
                     "half_says": effect_outcome(effects["half"]),
                     "half_matches": abs(r["half"] - r["clip"]) < EFFECT,
                     "pseudo_helps": effect_outcome(effects["clip-pseudo"]) == "helps",
                     "half_helps": effect_outcome(effects["half"]) == "helps"})
    return pd.DataFrame(rows)


def helps_share(ab: pd.DataFrame, arm: str) -> stats.Interval:
    """The share of :func:`ablation`'s rows on which `arm` ("clip", "pseudo" or "half") helps,
    judged per row on the paired trials, with Wilson's 95% interval."""
    return stats.proportion(int((ab[f"{arm}_says"] == "helps").sum()), len(ab))


def explanation(ab: pd.DataFrame) -> tuple[str, stats.Interval]:
    """Which explanation :func:`ablation`'s rows support, by a paired rule (McNemar's idea):
    over the rows where exactly one of the two arms helps (the pseudo-code's clipping, α/2
    without clipping), the share where it is α/2, with Wilson's 95% interval. "halved rate" when
    the interval lies above 1/2, "clipping" when below, "neither" when it contains 1/2 or no row
    tells the two arms apart. Rows where both or neither help say nothing about which."""
    half, pseudo = ab["half_helps"].astype(bool), ab["pseudo_helps"].astype(bool)
    p = stats.proportion(int((half & ~pseudo).sum()), int((half ^ pseudo).sum()))
    if p.n and p.low > 0.5:
        return "halved rate", p
    if p.n and p.high < 0.5:
        return "clipping", p
    return "neither", p


# -- the mechanism: hypergradient norms and the threshold over one run ------------------------------
def trace(cell: StackCell, data_root: str, device: str = "cpu") -> pd.DataFrame:
    """Per step of one run: each learned hyperparameter's value (as used), its hypergradient
    |h_t|, and with clipping the threshold θ_t and the norm after clipping."""
    rows = []

    def record(t: int, loss: torch.Tensor, opt) -> None:
        used = opt.levels[0].values(opt.hyper[0])
        clip = getattr(opt.states[1], "clip", None) if len(opt.levels) > 1 else None
        for i, n in enumerate(opt.learned[0]):
            h = float(opt.last_hypergrads[0][i]) if opt.last_hypergrads else math.nan
            row = {"step": t, "hyper": n, "value": float(used[n].detach()), "h": h,
                   "loss": float(loss.detach())}
            if clip:
                theta = float(clip[i]["theta"])
                row.update(theta=theta, clipped=min(abs(h), theta))
            rows.append(row)

    train(cell.train_config(device), cell.load(data_root), on_step=record)
    return pd.DataFrame(rows)
