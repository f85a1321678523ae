"""REPORT.md's section on the extensions: the optimizer family's sensitivity to α₀ beside Baydin
et al.'s own tuning grid, the learning-rate-free rivals, ASGC and Adam's ε. Builders of its tables
and sentences from the results files of
experiments/{family_sensitivity,threshold_grid,rivals,asgc,epsilon,convex_hdm}.py (and
bench/bench_rivals.py);
:mod:`hdrepro.report` merges ``SECTIONS``."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..studies import stats
from ..studies import (asgc as asgc_study, convex as convex_study, rivals as rival_study,
                       threshold as threshold_grid)
from ..methods import family
from ..studies.epsilon import NEAR, validation
from ..engine.models import TITLES as MODEL_TITLES
from ..methods.registry import title
from .format import holding, is_partial, k_of_n, md_table, percent, run_record, span
from ..engine.results import GridStore
from ..engine.cells import STUCK_ERROR
from ..studies.sensitivity import (KINDS, MIN_SEEDS, NEAR_BEST, judged, lost_runs, pair_tuning,
                                   tally, tuning, whole as sensitivity_whole)

DATA_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


#: experiments whose summaries read only some stored runs: ASGC's that chose on a held-out
#: validation split (older runs chose on the test set), of the pairs tuned on a whole seed; the
#: family study's whole sweeps (a store being filled holds part-swept seeds)
FILTERS = {"asgc": asgc_study.reportable, "family_sensitivity": sensitivity_whole}
#: what a filtered study waits for while none of its stored runs is read
WAITING = {"asgc": "no data–model pair has every method tuned on a whole seed yet",
           "family_sensitivity": "no optimizer's α₀ sweep is whole on one seed yet"}


def stored_frame(results: Path, name: str) -> pd.DataFrame:
    """Every run a study has stored, read or not by its summaries."""
    return GridStore(results / f"{name}.jsonl").frame()


def study_frame(results: Path, name: str) -> pd.DataFrame:
    """The stored runs a study's summaries read (its FILTERS entry, if any)."""
    frame = stored_frame(results, name)
    return FILTERS[name](frame) if name in FILTERS and not frame.empty else frame


def _left_out(results: Path, name: str) -> str:
    """Why a store's runs are all left out, or "" when none are."""
    frame = stored_frame(results, name)
    if name not in FILTERS or frame.empty or not FILTERS[name](frame).empty:
        return ""
    rerun = f"`hdrepro run {name} --profile {results.name}`"
    if name == "asgc":
        frame = asgc_study.validated(frame)
        if frame.empty:
            return (f"_The {results.name} profile's stored runs chose their configurations on "
                    f"the test set and are left out; {rerun} reruns the study choosing on a "
                    "held-out validation split._")
    return (f"_The {results.name} profile's study is under way ({len(frame)} runs stored): "
            f"{WAITING[name]}; {rerun} resumes it._")


def _superseded(results: Path, name: str) -> str:
    """A note when the profile's only runs of a study are kept under superseded/, or ""."""
    if not (results / "superseded" / f"{name}.jsonl").exists():
        return ""
    return (f"_The {results.name} profile has not run the study under its current protocol; an "
            f"earlier run of another protocol is kept in `results/{results.name}/superseded/` "
            f"(its README says why) and left out; `hdrepro run {name} --profile {results.name}` "
            "runs it._")


def _missing(script: str) -> str:
    return f"_Not run in this results folder (`python experiments/{script}`)._"


def _f(x, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else \
        f"{x:.{digits}f}"


def _pct(x, std=None) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    return f"{100 * x:.2f}%" + (f" ± {100 * std:.2f}" if std is not None and np.isfinite(std)
                                else "")


def provenance(frame: pd.DataFrame, results: Path, name: str) -> str:
    """What ran: data and its size, epochs per model, seeds, runs, divergences, device, time."""
    parts = []
    for data, g in frame.groupby("data", sort=False):
        r = g.iloc[0]
        epochs = ", ".join(f"{MODEL_TITLES.get(m, m)} {int(e)}" for m, e in
                           g.groupby("model", sort=False)["epochs"].max().items())
        parts.append(f"{data} {int(r['n_train']):,}/{int(r['n_test']):,} images "
                     f"({r['data_source']}), epochs {epochs}")
    seeds = sorted(frame["seed"].unique().tolist())
    text = (f"{'; '.join(parts)}; batch {int(frame['batch_size'].iloc[0])}, seeds {seeds}; "
            f"{len(frame)} runs ({int(frame['diverged'].astype(bool).sum())} diverged) on "
            f"{frame['device'].iloc[0]}, {frame['seconds'].sum() / 60:.1f} min of training")
    return text + _invocation(results, name) + "."


def _invocation(results: Path, name: str) -> str:
    """", last invocation <time>, commit <id>" from a driver's run record, or ""."""
    info = run_record(results, f"{name}_run.json")
    if not info:
        return ""
    took = ("did not finish (cut off, or still running)" if info["wall_s"] is None else
            f"{info['wall_s']:.0f} s")
    return f", last invocation {took}, commit {info['commit']}"


# -- 1. the optimizer family -------------------------------------------------------------------
def family_provenance(f: pd.DataFrame, results: Path) -> str:
    alphas = ", ".join(f"{a:g}" for a in sorted(f["alpha0"].unique()))
    return (f"α₀ ∈ {{{alphas}}}; " + provenance(f, results, "family_sensitivity")
            + _family_unread(len(f), results))


def _family_unread(read: int, results: Path) -> str:
    """How many stored runs the family's summaries leave out, those of sweeps not yet whole for
    every variant (:func:`hdrepro.studies.sensitivity.whole`); "" when every stored run is read."""
    unread = len(stored_frame(results, "family_sensitivity")) - read
    if unread <= 0:
        return ""
    runs = "1 stored run" if unread == 1 else f"{unread} stored runs"
    return (f" The runs above are those of the sweeps whole for every variant; {runs} of sweeps "
            "still being filled are not read.")


def family_table(f: pd.DataFrame, results: Path) -> str:
    t = tuning(f).merge(pair_tuning(f), on=["model", "family"], how="left", suffixes=("", "_p"))
    t = t.assign(mo=t.model.map(list(MODEL_TITLES).index),
                 fo=t.family.map(list(family.FAMILY).index)).sort_values(["mo", "fo"])
    rows = [[MODEL_TITLES.get(r.model, r.model), family.TITLES[r.family],
             f"{r.base_near}/{r.alphas}", f"{r.hd_near}/{r.alphas}", _near_change(r),
             _f(r.base_best), _f(r.hd_best), _f(r.base_median), _f(r.hd_median)]
            for r in t.itertuples()]
    return md_table(["model", "optimizer", "near-best α₀, base", "near-best α₀, HD",
                     "HD − base per seed (95% t), outcome", "best val. loss, base", "best, HD",
                     "median over α₀, base", "median, HD"], rows)


def _near_change(r) -> str:
    if not isinstance(r.near, stats.Interval) or r.seeds < MIN_SEEDS:
        return "one seed"
    return (f"{r.near.estimate:+.2g} [{r.near.low:+.2g}, {r.near.high:+.2g}], n = {r.seeds}: "
            f"{r.outcome}")


def family_verdict(f: pd.DataFrame, results: Path) -> str:
    """The paired, noise-judged counts first (claim 4); the counts of seed means after them, as
    description only."""
    return _family_paired(f) + _family_means(tuning(f)) + _family_lost(f)


def _family_paired(f: pd.DataFrame) -> str:
    """The near-best counts per seed, HD − base paired by seed (the summary's claim 4)."""
    p = pair_tuning(f)
    done = judged(p)
    if done.empty:
        return (f"With one seed per pair, no change in the near-best range of α₀ can be told "
                f"from the noise (a pair is judged from {MIN_SEEDS} seeds on). ")
    models = sorted(done.model.unique(), key=list(MODEL_TITLES).index)
    by_model = "; ".join(f"{MODEL_TITLES.get(m, m)} {tally(done[done.model == m])}"
                         for m in models)
    waiting = len(p) - len(done)
    return (f"The range of α₀ that ends within {NEAR_BEST - 1:.0%} of the best validation loss, "
            f"HD against its base, counted per seed and paired by seed ({span(done.seeds)} "
            f"seeds; 95% t interval, a tie when it contains 0; counts move in whole α₀, so a "
            f"count that agrees on every seed is given at least the spread of rounding to one "
            f"α₀): **{by_model}**"
            + (f"; {waiting} pair{'s' * (waiting != 1)} with one seed so far" if waiting else "")
            + ". ")


def _family_means(t: pd.DataFrame) -> str:
    """Counts of seed means over every pair: description, not judged against the noise."""
    n = len(t)
    wider, narrower = int((t.hd_near > t.base_near).sum()), int((t.hd_near < t.base_near).sum())
    widened = []
    for kind, names in KINDS.items():
        k = t[t.family.isin(names)]
        label = f"{kind} (SGD, momentum, Nesterov)" if kind == "non-adaptive" else kind
        widened.append(f"{label}: {int((k.hd_near > k.base_near).sum())} of {len(k)}")
    return (f"Read from seed means over all {n} pairs, which describes but does not judge "
            f"against the noise: HD's range was wider for {wider}, narrower for {narrower} and "
            f"the same for {n - wider - narrower} (wider, by kind: {'; '.join(widened)}); its "
            f"median final validation loss over the α₀ sweep was lower than the base "
            f"optimizer's for {int((t.hd_median < t.base_median).sum())} of {n} pairs, and its "
            f"best for {int((t.hd_best < t.base_best).sum())} of {n}. ")


def _family_lost(f: pd.DataFrame) -> str:
    """Runs lost (diverged, or stuck at chance) per model and kind, base against HD."""
    lost = lost_runs(f).assign(lost=lambda x: x.diverged + x.stuck)
    by_model = []
    for model in sorted(lost.model.unique(), key=list(MODEL_TITLES).index):
        m = lost[lost.model == model].set_index(["kind", "variant"])
        by_model.append(f"{MODEL_TITLES[model]} " + ", ".join(
            f"{kind} {m.loc[(kind, 'base'), 'lost']} vs {m.loc[(kind, 'hd'), 'lost']} of "
            f"{m.loc[(kind, 'base'), 'runs']}" for kind in KINDS if (kind, "base") in m.index))
    return (f"Runs lost, diverged or finished stuck at chance (test error ≥ {STUCK_ERROR:.0%}), "
            f"base vs HD: {'; '.join(by_model)}. HD with β = 0 is its base exactly, so where "
            f"HD loses more runs, the cost is that of one untuned β per kind (Baydin et al.'s "
            f"SGD-HD and Adam-HD values).")


# -- 2. the learning-rate-free rivals --------------------------------------------------------
def bench_rivals(results: Path) -> pd.DataFrame:
    """The rivals' time per iteration and state size, measured once on the CPU (quick profile)."""
    path = holding(results, "bench_rivals_cpu.csv") / "bench_rivals_cpu.csv"
    return pd.read_csv(path).set_index("method") if path.exists() else pd.DataFrame()


def rivals_provenance(f: pd.DataFrame, results: Path) -> str:
    return provenance(f, results, "rivals")


def rivals_table(f: pd.DataFrame, results: Path) -> str:
    comp = rival_study.comparison(f)
    paired = rival_study.against(f).set_index(["model", "method"])
    bench = bench_rivals(results)
    out = []
    for model, c in comp.groupby("model", sort=False):
        rows = []
        for r in c.itertuples():
            b = bench.loc[r.method] if r.method in bench.index else None
            p = paired.loc[(model, r.method)] if (model, r.method) in paired.index else None
            rows.append([rival_study.TITLES[r.method], _f(r.train_loss), _f(r.val_loss),
                         _pct(r.test_error, r.test_error_std), f"{r.diverged}/{r.seeds}",
                         "–" if p is None else _paired(p, "Adam-HD"),
                         f"{b.ratio:.2f}×" if b is not None else "–",
                         f"{b.state_floats_per_param:.0f}" if b is not None else "–"])
        out.append(f"**{MODEL_TITLES.get(model, model)}**\n\n" + md_table(
            ["method", "final train loss", "final loss, test set", "test error (± std)",
             "diverged", "Adam-HD − this, test error in points (95% t)",
             "time/iteration vs Adam", "state floats/param"], rows))
    return "\n\n".join(out)


#: the outcome of :func:`rival_study.against` as Adam-HD's result against a rival
AGAINST = {"better": "beats", "worse": "loses to", "tie": "ties with"}


def _paired(p, who: str, n: str | None = None) -> str:
    """A row of a comparison (`who` − this): its interval in points, n and outcome. `n` replaces
    the interval's pooled count where two independent samples are compared ("10 + 10")."""
    d = p.difference
    n = n or str(d.n)
    spread = (f" [{100 * d.low:+.2f}, {100 * d.high:+.2f}], n = {n}" if d.n > 1 else
              f", n = {n} (no spread)")
    return f"{100 * d.estimate:+.2f}{spread}: {who} {AGAINST[p.outcome]} it"


def rivals_scale(f: pd.DataFrame, results: Path) -> str:
    model = rival_study.scale_model(f)
    if model is None:
        return "_No scale sweep in this folder._"
    s = rival_study.scale_spread(f, model)
    scales = ", ".join(f"{x:g}" for x in sorted(f[f.model == model]["scale"].unique()))
    rows = [[rival_study.TITLES[r.method], _f(r.best), _f(r.worst), f"{r.ratio:.2f}",
             f"{r.diverged}/{r.scales}"] for r in s.itertuples()]
    return (f"{MODEL_TITLES.get(model, model)}, each method's own initial scale × {{{scales}}} "
            "(mean final loss on the test set over the sweep's seeds; the runs hold no "
            "validation split):\n\n" + md_table(
                ["method", "best", "worst", "worst/best", "diverged scales"], rows))


def rivals_verdict(f: pd.DataFrame, results: Path) -> str:
    comp = rival_study.comparison(f).set_index(["model", "method"])
    paired = rival_study.against(f)
    lines = []
    for model, g in paired.groupby("model", sort=False):
        said = []
        for outcome in ("better", "worse"):
            names = [rival_study.TITLES[m] for m in g.method[g.outcome == outcome]]
            if names:
                said.append(f"{AGAINST[outcome]} {', '.join(names)}")
        ties = int((g.outcome == "tie").sum())
        if ties:
            said.append(f"ties with {'all' if ties == len(g) else 'the other'} {ties}")
        lowest = comp.loc[model, "test_error"].idxmin()
        lines.append(
            f"- **{MODEL_TITLES.get(model, model)}**: Adam-HD "
            f"{_pct(comp.loc[(model, 'adam-hd'), 'test_error'])}; of the {len(g)} rival settings, "
            f"it {'; '.join(said)} (paired over {span(g.seeds)} seeds). Lowest mean test error: "
            f"{rival_study.TITLES[lowest]} ({_pct(comp.loc[(model, lowest), 'test_error'])}).")
    lines.append("- *The rule:* every rival setting is compared on its own (no setting is "
                 "picked: the runs hold no validation split to pick one on); Adam-HD − rival, "
                 "final test error paired by seed, 95% t interval: beats below 0, loses above, "
                 "a tie when it contains 0; a run that diverged where its partner did not "
                 "decides against its method.")
    model = rival_study.scale_model(f)
    if model is not None:
        s = rival_study.scale_spread(f, model)
        flat = s.sort_values("ratio").iloc[0]
        steep = s.sort_values("ratio").iloc[-1]
        lines.append(f"- Sensitivity to the initial scale: flattest "
                     f"{rival_study.TITLES[flat.method]} (worst/best {flat.ratio:.2f}), steepest "
                     f"{rival_study.TITLES[steep.method]} ({steep.ratio:.2f}).")
    return "\n".join(lines)


# -- 3. ASGC ------------------------------------------------------------------------------------
def asgc_provenance(f: pd.DataFrame, results: Path) -> str:
    return provenance(f, results, "asgc") + _asgc_under_way(f, results)


def _asgc_under_way(f: pd.DataFrame, results: Path) -> str:
    """What a study still being filled has not run yet, or "" once every run is stored."""
    total = (run_record(results, "asgc_run.json") or {}).get("cells_total")
    stored = len(stored_frame(results, "asgc"))
    if not is_partial(stored, total):
        return ""
    pairs, unread = f.groupby(["data", "model"]).ngroups, stored - len(f)
    # the unread runs are those of a seed still being tuned (hdrepro.studies.asgc.whole)
    waiting = (f"; {unread} stored run{'s' * (unread != 1)}, of a seed still being tuned, "
               f"{'is' if unread == 1 else 'are'} not read yet" if unread > 0 else "")
    return (f" The study is under way ({stored} of {total} runs stored): the tables read the "
            f"{len(f)} runs of the {pairs} data–model pair{'s' * (pairs != 1)} tuned on a whole "
            f"seed so far{waiting}; a pair's ablations and random search run after its tuning, "
            f"and `hdrepro run asgc --profile {results.name}` resumes the study.")


def asgc_table(f: pd.DataFrame, results: Path) -> str:
    m = asgc_study.metrics(f)
    paired = asgc_study.against(f).set_index(["data", "model", "method"])
    out = []
    for (data, model), g in m.groupby(["data", "model"], sort=False):
        rows = [[asgc_study.TITLES[r.method], f"`{r.config}`", _pct(r.test_error,
                                                                      r.test_error_std),
                 _paired(paired.loc[(data, model, r.method)], "ASGC")
                 if (data, model, r.method) in paired.index else "–",
                 f"{_f(r.epochs_to_target, 1)} ({_f(r.seconds_to_target, 1)} s), "
                 f"{r.reached}/{r.runs} runs", _pct(r.stability), _f(r.gap)]
                for r in g.itertuples()]
        target = g["target_acc"].iloc[0]
        out.append(f"**{MODEL_TITLES.get(model, model)} on {data}** (target accuracy "
                   f"{100 * target:.2f}%)\n\n" + md_table(
                       ["method", "chosen α and options", "test error",
                        "ASGC − this, test error in points (95% t)", "epochs (s) to target",
                        "stability (std of val. acc., last epochs)",
                        "gap (val. − train loss)"], rows))
    return "\n\n".join(out)


def asgc_robustness(f: pd.DataFrame, results: Path) -> str:
    r = asgc_study.robustness(f)
    if r.empty:
        return ("_No whole random search stored yet for these pairs (a pair's random search "
                "runs after its tuning, method by method)._")
    against = asgc_study.robustness_against(f).set_index(["data", "model", "method"])

    def versus(key) -> str:
        if key not in against.index:
            return "–"
        a = against.loc[key]
        return _paired(a, "ASGC", n=f"{a.n_reference} + {a.n_method}")

    rows = [[f"{MODEL_TITLES.get(x.model, x.model)}, {x.data}", asgc_study.TITLES[x.method],
             str(x.samples), _pct(x.median), versus((x.data, x.model, x.method)),
             _pct(x.best), _pct(x.worst), str(int(x.diverged)), str(int(x.stuck))]
            for x in r.itertuples()]
    return md_table(["model, data", "method", "configurations", "median test error",
                     "ASGC − this, median in points (95% bootstrap)", "best", "worst",
                     "diverged (NaN/inf)", f"stuck at chance (error ≥ {STUCK_ERROR:.0%})"], rows)


def asgc_verdict(f: pd.DataFrame, results: Path) -> str:
    a = asgc_study.against(f)
    base = ["adam", "momentum", "adagrad", "rmsprop"]
    pairs = list(a.groupby(["data", "model"], sort=False))
    n = len(pairs)

    def count(method_set, test) -> int:
        return sum(bool(test(g[g.method.isin(method_set)].outcome)) for _, g in pairs)

    seeds = [d.n for d in a.difference]
    text = (f"ASGC against each method at its own chosen configuration, final test error paired "
            f"by seed (n = {span(seeds)}; 95% t interval, a tie when it contains 0"
            + ("; one seed has no spread, so every comparison is a tie" if max(seeds, default=0)
               < 2 else "") +
            f"): it beat all four baselines on **{count(base, lambda o: (o == 'better').all())} "
            f"of {n}** data–model pairs, beat the SGD-momentum it wraps on "
            f"{count(['momentum'], lambda o: (o == 'better').all())} of {n}, and lost to at "
            f"least one baseline on {count(base, lambda o: (o == 'worse').any())} of {n}.")
    for v, part, variant in (("asgc-no-noise", "the noise", "without noise"),
                             ("asgc-fixed", "the adaptive threshold", "with a fixed threshold")):
        o = a[a.method == v].outcome
        if len(o):
            text += (f" Ablation, {part} (ASGC against ASGC {variant}, paired the same way): "
                     f"helped on {int((o == 'better').sum())}, tie on {int((o == 'tie').sum())}, "
                     f"hurt on {int((o == 'worse').sum())} of {len(o)} pairs.")
    m = asgc_study.metrics(f)
    stabler = sum(bool(g.set_index("method").stability.idxmin() == "asgc-momentum")
                  for _, g in m[m.method.isin(base + ["asgc-momentum"])].groupby(
                      ["data", "model"], sort=False))
    text += (f" It had the lowest mean spread of validation accuracy over the last epochs on "
             f"{stabler} of {n} pairs (a mean over seeds, no interval).")
    r = asgc_study.robustness(f)
    if not r.empty:
        o = asgc_study.robustness_against(f).outcome
        text += (f" Over {span(r.samples)} random configurations per method, ASGC's median test "
                 f"error against each baseline's (difference of medians, 95% bootstrap over "
                 f"configurations, a tie when it contains 0): lower in "
                 f"{int((o == 'better').sum())}, tie in {int((o == 'tie').sum())}, higher in "
                 f"{int((o == 'worse').sum())} of {len(o)} comparisons.")
        lost = r.groupby("method")[["samples", "diverged", "stuck"]].sum()
        text += (" Random configurations lost (diverged, or stuck at chance): " + ", ".join(
            f"{asgc_study.TITLES[m]} {int(lost.loc[m, 'diverged'] + lost.loc[m, 'stuck'])} of "
            f"{int(lost.loc[m, 'samples'])}" for m in ["asgc-momentum", *base] if m in lost.index)
            + ".")
    bench = bench_rivals(results)
    if "asgc-momentum" in bench.index:
        cost = bench.loc[["asgc-momentum", "momentum"], "ratio"]
        text += (f" Its cost: one MLNN iteration with ASGC takes {cost['asgc-momentum']:.2f}× "
                 f"Adam's, against {cost['momentum']:.2f}× for the SGD-momentum it wraps "
                 f"(`bench/bench_rivals.py`, CPU).")
    return text


# -- 4. Adam's ε -------------------------------------------------------------------------------
def _epsilon(f: pd.DataFrame, results: Path) -> pd.DataFrame | None:
    hist = results / "epsilon_histograms.csv"
    return validation(f, pd.read_csv(hist)) if hist.exists() else None


def epsilon_provenance(f: pd.DataFrame, results: Path) -> str:
    return provenance(f, results, "epsilon")


def epsilon_table(f: pd.DataFrame, results: Path) -> str:
    v = _epsilon(f, results)
    if v is None:
        return _missing("epsilon.py")
    rows = [[MODEL_TITLES.get(r.model, r.model), f"[{r.interval_lo:.0e}, {r.interval_hi:.0e}]",
             f"{r.decades:.0f} of {r.default_decades:.0f}", f"{r.best_eps:.0e}",
             "yes" if r.best_inside else "no", f"{r.near_inside} of {r.near_best}",
             _f(r.best_val_loss), _f(r.worst_val_loss)] for r in v.itertuples()]
    return md_table(["model", "proposed ε interval", "decades (vs usual)", "best ε (sweep)",
                     "best inside?", f"near-best ε (≤ {NEAR:.0%} off) inside",
                     "best val. loss", "worst val. loss"], rows)


def epsilon_verdict(f: pd.DataFrame, results: Path) -> str:
    v = _epsilon(f, results)
    if v is None:
        return _missing("epsilon.py")
    n = len(v)
    inside = stats.proportion(int(v.best_inside.sum()), n)
    near = stats.proportion(int((v.near_inside > 0).sum()), n)
    narrow = v.default_decades.iloc[0] / v.decades.mean()
    return (f"The proposed interval held the sweep's best ε for **{k_of_n(inside)}** models and a "
            f"near-best ε for {k_of_n(near)} (Wilson's 95% interval); it spans "
            f"{v.decades.mean():.1f} decades on average against the usual search's "
            f"{v.default_decades.iloc[0]:.0f}, {narrow:.1f}× narrower (the rule is meant to narrow "
            f"the search at least 2×; a narrower search that misses the best ε saves nothing).")


def _source(results: Path, experiment: str) -> tuple[Path, pd.DataFrame, str]:
    """The folder whose runs a section reads, its runs, and a note when it is not `results`:
    a study the full profile has not run (or whose runs are all left out) falls back to the
    quick profile's runs beside it, and says so."""
    frame = study_frame(results, experiment)
    quick = results.parent / "quick"
    if frame.empty and results.name != "quick" and not study_frame(quick, experiment).empty:
        why = (_left_out(results, experiment) or _superseded(results, experiment)
               or "_This profile has not run the study._")
        return quick, study_frame(quick, experiment), (
            f"**From the quick profile** (`results/quick/`). {why.strip('_')} ")
    return results, frame, ""


def study_section(experiment: str, build: Callable[[pd.DataFrame, Path], str]
             ) -> Callable[[Path], str]:
    """A report section built from an experiment's stored runs, or a note saying how to run it;
    its provenance part says when the runs come from another profile (:func:`_source`)."""
    def section(results: Path) -> str:
        folder, f, note = _source(results, experiment)
        if f.empty:
            return _left_out(results, experiment) or _missing(f"{experiment}.py")
        text = build(f, folder)
        return note + text if build.__name__.endswith("provenance") else text
    return section


def threshold_provenance(f: pd.DataFrame, results: Path) -> str:
    cap = int(f["epochs"].max())
    return (f"Cap {cap} epochs; " + provenance(f, results, "threshold_grid"))


def threshold_table(f: pd.DataFrame, results: Path) -> str:
    s = threshold_grid.summary(f)
    rows = [[title(r.hd), f"{r.base_reach} of {r.alphas}",
             f"{r.hd_reach} of {r.alphas} (β = {r.hd_beta:g})", r.range,
             f"{percent(r.fast)}, n = {r.fast.n}",
             str(r.seeds)] for r in s.itertuples()]
    return md_table(["HD optimizer", "α₀ reaching 0.29, base", "α₀ reaching 0.29, HD at one β",
                     "α₀ range", "HD runs at least as fast as the base (95% CI)", "seeds"], rows)


def threshold_verdict(f: pd.DataFrame, results: Path) -> str:
    s = threshold_grid.summary(f)
    return (f"Verdict on this grid: **{threshold_grid.verdict(s)}**. The rule: HD reduces the "
            "need to tune α₀ when, at one β for every α₀, it brings more α₀ to the threshold "
            "than its base optimizer; it reproduces when that holds for all three HD "
            "optimizers, partly for some, and does not for none. The last column counts, over "
            "every (α₀, β) and seed, the HD runs that reached the threshold in no more "
            "iterations than the base optimizer at the same α₀ and seed (pairs where neither "
            "reached it are left out), with Wilson's 95% interval.")


# -- HDM-Best against L-BFGS ------------------------------------------------------------------
def convex_provenance(f: pd.DataFrame, results: Path) -> str:
    r = f.iloc[0]
    seeds = sorted(int(x) for x in f.seed.unique())
    text = (f"{DATA_NAMES.get(r['data'], r['data'])} training images, {int(r['size']):,} per "
            f"seed (of {int(r['n_train']):,}, {r['data_source']}); seeds {seeds}; "
            f"budget {int(f.budget.min())} gradient evaluations ({int(f.budget.max())} for "
            f"f*); SGD-HD at β ∈ {{{', '.join(f'{b:g}' for b in sorted(f[f.method == 'hd'].beta.unique()))}}}; "
            f"{len(f)} runs on {r['device']}, {f['seconds'].sum() / 60:.1f} min")
    return text + _invocation(results, "convex_hdm") + "."


def convex_tol(results: Path) -> float:
    return convex_study.ConvexSpec().tol


def convex_table(f: pd.DataFrame, results: Path) -> str:
    t = convex_study.evals_to(f, convex_tol(results))
    rows = []
    for method in ("lbfgs", "hdm-best", "hd", "gd"):
        m = t[t.method == method]
        if m.empty:
            continue
        reached = m.evals.dropna()
        evals = (f"{reached.median():.0f} (median of {len(reached)})" if len(reached)
                 else "–")
        rows.append([convex_study.NAMES[method], f"{len(reached)} of {len(m)}", evals,
                     f"{m.gap.median():.2e}"])
    return md_table(["method", "seeds reaching the tolerance", "evaluations to it",
                     "f − f* at the budget (median)"], rows)


def convex_cost(f: pd.DataFrame, results: Path) -> str:
    """HDM's and MARTHE's time per training iteration against Adam's, from bench_rivals."""
    bench = bench_rivals(results)
    rows = [[bench.loc[m, "title"], f"{bench.loc[m, 'ratio']:.2f}× "
             f"[{bench.loc[m, 'ratio_low']:.2f}, {bench.loc[m, 'ratio_high']:.2f}]",
             f"{bench.loc[m, 'state_floats_per_param']:.0f}"]
            for m in ("hdm", "marthe") if m in bench.index]
    if not rows:
        return "_No cost measured for HDM and MARTHE (`python bench/bench_rivals.py`)._"
    return ("Cost of one MLNN training iteration (forward, backward, step; batch 128) against "
            "torch's Adam, measured side by side on the CPU (`bench/bench_rivals.py`, 95% "
            "bootstrap interval). MARTHE's Hessian-vector product keeps the backward graph for "
            "a second pass, memory the state count leaves out.\n\n" + md_table(
                ["method", "time/iteration vs Adam", "state floats/param"], rows))


def convex_verdict(f: pd.DataFrame, results: Path) -> str:
    table = convex_study.evals_to(f, convex_tol(results))
    outcome, ratio = convex_study.verdict(table)
    missed = {m: int(table[table.method == m].evals.isna().sum()) for m in ("hdm-best", "lbfgs")}
    censored = " and ".join(f"{convex_study.NAMES[m]} in {k} of {ratio.n}" for m, k in
                            missed.items() if k)
    note = (f" The tolerance was not reached within the budget by {censored} seeds; such a run "
            "counts its whole budget, which flatters it." if censored else "")
    return (f"Verdict: HDM-Best **{outcome}** L-BFGS on this problem: it needs "
            f"{ratio.estimate:.2f}× L-BFGS's gradient evaluations to bring f − f* to 1e-4 of "
            f"f(0) − f* (95% interval [{ratio.low:.2f}, {ratio.high:.2f}], n = {ratio.n} "
            f"seeds).{note} The rule: HDM-Best matches L-BFGS when the interval of the ratio (a "
            "geometric mean over seeds) lies within [1/2, 2], is slower or faster when it lies "
            "beyond that band on one side of 1, and the test is inconclusive otherwise.")


BUILDERS = {
    "family_sensitivity": (family_provenance, family_table, family_verdict),
    "threshold_grid": (threshold_provenance, threshold_table, threshold_verdict),
    "rivals": (rivals_provenance, rivals_table, rivals_scale, rivals_verdict),
    "asgc": (asgc_provenance, asgc_table, asgc_robustness, asgc_verdict),
    "epsilon": (epsilon_provenance, epsilon_verdict, epsilon_table),
    "convex_hdm": (convex_provenance, convex_table, convex_verdict, convex_cost),
}
def asgc_figures(results: Path) -> str:
    """ASGC's two figures, from the profile whose runs the section reads (:func:`_source`)."""
    folder, frame, _ = _source(results, "asgc")
    names = [n for n in ("asgc.png", "asgc_gradients.png")
             if (folder.parent.parent / "figures" / folder.name / n).exists()]
    if frame.empty or not names:
        return ""
    cells = " | ".join(f"![](figures/{folder.name}/{n})" for n in names)
    caption = "Validation accuracy of the chosen configurations" + (
        " and the random configurations' test errors" if len(asgc_study.random_runs(frame))
        else "")
    if "asgc_gradients.png" in names:
        caption += ("; per-layer |g| over training, before and after ASGC's clipping and for "
                    "SGD-momentum")
    return f"| {cells} |\n|{'---|' * len(names)}\n\n*{caption}.*"


SECTIONS: dict[str, Callable[[Path], str]] = {
    build.__name__: study_section(experiment, build)
    for experiment, builders in BUILDERS.items() for build in builders}
SECTIONS["asgc_figures"] = asgc_figures
