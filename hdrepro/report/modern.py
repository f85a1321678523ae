"""REPORT.md's section on the newer hypergradient methods (Appendix A.5): MARTHE and HDM where
the grids are contested (:mod:`hdrepro.studies.contested`), on SGD's row of the sensitivity study
(:mod:`hdrepro.studies.sensitivity`), and the recommendation drawn from those, the convex comparison and
the cost. The convex comparison's own builders are in :mod:`hdrepro.report.extensions`."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from ..studies import contested as cs
from ..studies import convex as convex_study, stats
from ..engine.cells import with_lost
from ..engine.results import GridStore
from ..methods.registry import title
from ..studies.sensitivity import MODERN_RATE, sgd_row, tuning
from .extensions import bench_rivals, convex_tol, provenance, study_frame, study_section
from ..engine.models import TITLES as MODEL_TITLES
from .format import k_of_n, md_table

RECOMMEND_WHY = {
    "tie": "neither lost fewer runs than SGD-HD on every model; the differences lie inside the "
           "noise",
    "worse": "neither lost fewer runs than SGD-HD on every model, and at least one lost more",
    "mixed": "neither lost fewer runs than SGD-HD on every model: some differences are ties "
             "and some go against them",
    "untested": "the contested region has not been run",
}


def _interval(i, pct: bool = True) -> str:
    fmt = (lambda x: f"{x:.0%}") if pct else (lambda x: f"{x:+.0%}")
    return f"{fmt(i.estimate)} [{fmt(i.low)}, {fmt(i.high)}]"


def _models(frame: pd.DataFrame) -> list[str]:
    return sorted(frame.model.unique(), key=list(MODEL_TITLES).index)


# -- the contested region ----------------------------------------------------------------------
def contested_provenance(f: pd.DataFrame, results: Path) -> str:
    alphas = ", ".join(f"{a:g}" for a in sorted(f.alpha0.unique()))
    rates = ", ".join(f"{b:g}" for b in sorted(f[f.method != "sgd"].beta.unique()))
    epochs = int(f.epochs.max())
    early = []
    for model in _models(f):
        grid = GridStore(results / f"grid_{model}.jsonl").frame()
        seeds = GridStore(results / f"grid_seeds_{model}.jsonl").frame()
        both = pd.concat([grid, seeds], ignore_index=True) if len(seeds) else grid
        if len(both):
            share = cs.early_share(both, epochs)
            if share.n:
                early.append(f"{MODEL_TITLES[model]} {share.estimate * share.n:.0f} of "
                             f"{share.n}")
    seen = (f" Of SGD-HD's divergences in the grids' 100-epoch runs (§2, one seed and the "
            f"10-seed regions), these happened within the first {epochs} epochs: "
            f"{'; '.join(early)}." if early else "")
    return (f"α₀ ∈ {{{alphas}}} × rate ∈ {{{rates}}}; " + provenance(f, results, "contested")
            + seen)


def contested_table(f: pd.DataFrame, results: Path) -> str:
    lost = cs.losses(f).set_index(["model", "method"])
    diff = cs.against_hd(f).set_index(["model", "method"])
    best = cs.best_losses(f).groupby(["model", "method"]).best_train_loss.median()
    rows = []
    for model in _models(f):
        for method in ("sgd", *cs.METHODS):
            if (model, method) not in lost.index:
                continue
            r = lost.loc[(model, method)]
            d = diff.loc[(model, method)] if (model, method) in diff.index else None
            rows.append([MODEL_TITLES[model], cs.NAMES[method], r.runs, r.diverged, r.stuck,
                         _interval(r.lost),
                         "–" if d is None else f"{_interval(d.difference, pct=False)}: "
                                               f"{d.verdict}",
                         f"{best.get((model, method), float('nan')):.3f}"])
    return md_table(["model", "method", "runs", "diverged", "stuck at chance", "lost (95% CI)",
                     "minus SGD-HD's share", "best final training loss (median over seeds)"],
                    rows)


def contested_verdict(f: pd.DataFrame, results: Path) -> str:
    diff = cs.against_hd(f)
    if diff.empty:
        return "_SGD-HD's cells have not run yet; nothing to compare against._"
    parts = [f"{cs.NAMES[r.method]} on the {MODEL_TITLES[r.model]}: **{r.verdict}** "
             f"({_interval(r.difference, pct=False)}, n = {r.difference.n})"
             for r in diff.itertuples()]
    return ("Lost runs against SGD-HD's, over the same α₀ × rate cells and seeds: "
            + "; ".join(parts) + ". The rule: fewer (or more) lost runs when the 95% interval "
            "of the difference of shares (Newcombe's) lies below (above) 0, a tie when it "
            "contains 0. The rates are each method's own: MARTHE's β scales the same "
            "hypergradient as SGD-HD's, HDM's η an AdaGrad-normalised one, so the cells compare "
            "the ranges a user would try, not equal settings.")


# -- SGD's row of the sensitivity study --------------------------------------------------------
def modern_family(f: pd.DataFrame, results: Path) -> str:
    t = tuning(f)
    t = t[t.family == "sgd"]
    have = [m for m in MODERN_RATE if f"{m}_near" in t and t[f"{m}_near"].notna().any()]
    if t.empty or not have:
        return ("_MARTHE and HDM have not run on the sensitivity study's SGD row yet "
                "(`hdrepro run family_sensitivity`)._")
    modern = f[f.variant.isin(have)]
    rows = []
    for r in t.itertuples():
        n_alpha = int(modern[modern.model == r.model].alpha0.nunique())
        cells = [f"{getattr(r, f'{m}_near'):.0f}/{n_alpha}, best {getattr(r, f'{m}_best'):.3f}"
                 for m in have]
        rows.append([MODEL_TITLES[r.model], f"{r.base_near}/{r.alphas}, best {r.base_best:.3f}",
                     f"{r.hd_near}/{r.alphas}, best {r.hd_best:.3f}", *cells])
    rates = ", ".join(f"{cs.NAMES[m]} at {cs.RATE_SYMBOL[m]} = {MODERN_RATE[m]:g}" for m in have)
    return (f"On the sensitivity study's SGD row (A.1; {rates}, each untuned): the α₀ whose "
            f"final validation loss ends within 10% of the best SGD or SGD-HD reached, and the "
            "best final validation loss.\n\n"
            + md_table(["model", "SGD", "SGD-HD", *(cs.NAMES[m] for m in have)], rows))


def modern_family_summary(f: pd.DataFrame, results: Path) -> str:
    """One sentence: summed over models, at the α₀ the newer methods ran, how many runs of SGD,
    SGD-HD and each newer method end near-best, and how many each lost."""
    row = sgd_row(f)
    if row.empty:
        return modern_family(f, results)
    total = row.groupby("variant", sort=False)[["runs", "near", "lost"]].sum()
    names = {"base": "SGD", "hd": "SGD-HD", **{m: title(m) for m in MODERN_RATE}}
    parts = [f"{names[v]} {k_of_n(stats.proportion(int(r.near), int(r.runs)))} (lost {r.lost})"
             for v, r in total.iterrows()]
    have = [m for m in MODERN_RATE if m in total.index]
    return (f"On the sensitivity study's SGD row (A.1), at the α₀ every method ran "
            f"({len(row.model.unique())} models × "
            f"{', '.join(f'{a:g}' for a in sorted(f[f.variant.isin(have)].alpha0.unique()))}), "
            "the runs whose final validation loss ends within 10% of the best SGD or SGD-HD "
            "reached anywhere on the sweep (Wilson's 95% interval): " + "; ".join(parts)
            + ". Each newer method ran at "
            "one untuned rate (" + ", ".join(f"{title(m)} {cs.RATE_SYMBOL[m]} = "
                                              f"{MODERN_RATE[m]:g}" for m in have)
            + "); per model: [docs/report/extensions.md](docs/report/extensions.md).")


# -- the recommendation ------------------------------------------------------------------------
def _convex_outcome(results: Path) -> str:
    f = study_frame(results, "convex_hdm")
    if f.empty:
        return ""
    outcome, ratio = convex_study.verdict(convex_study.evals_to(f, convex_tol(results)))
    return (f" On a deterministic convex problem, HDM-Best {outcome} L-BFGS "
            f"({ratio.estimate:.2f}× its gradient evaluations, [{ratio.low:.2f}, "
            f"{ratio.high:.2f}]).")


def _cost(results: Path) -> str:
    bench = bench_rivals(results)
    parts = [f"{bench.loc[m, 'title']} {bench.loc[m, 'ratio']:.2f}×" for m in ("hdm", "marthe")
             if m in bench.index]
    return (f" Their cost per MLNN iteration against Adam's: {', '.join(parts)} (Appendix B)."
            if parts else "")


def _by_rate(f: pd.DataFrame) -> str:
    """SGD-HD's lost share at its smallest and largest β in the region: what a smaller β buys."""
    hd = with_lost(f[f.method == "sgd-hd"])
    if hd.empty or hd.beta.nunique() < 2:
        return ""
    lo, hi = hd.beta.min(), hd.beta.max()
    share = {b: stats.proportion(int(hd[hd.beta == b].lost.sum()), int((hd.beta == b).sum()))
             for b in (lo, hi)}
    return (f" SGD-HD itself lost {_interval(share[lo])} of its runs at β = {lo:g} and "
            f"{_interval(share[hi])} at β = {hi:g}.")


def modern_recommendation(f: pd.DataFrame, results: Path) -> str:
    method, why = cs.recommendation(cs.against_hd(f))
    if method is None:
        main = (f"Where SGD-HD diverges, we cannot yet point to a newer method that fixes it: "
                f"{RECOMMEND_WHY[why]}.{_by_rate(f)}")
    else:
        main = (f"Where SGD-HD diverges, use **{cs.NAMES[method]}**: it lost fewer runs than "
                f"SGD-HD on every model of the contested region (the table above, with "
                "intervals), at its own rates over the same α₀.")
    return "**Recommendation.** " + main + _convex_outcome(results) + _cost(results)


BUILDERS = {
    "contested": (contested_provenance, contested_table, contested_verdict,
                  modern_recommendation),
    "family_sensitivity": (modern_family, modern_family_summary),
}

SECTIONS: dict[str, Callable[[Path], str]] = {
    build.__name__: study_section(experiment, build)
    for experiment, builders in BUILDERS.items() for build in builders}
