"""REPORT.md's summary: each claim of the papers beside our evidence and a verdict, computed from
the same results files as the report's sections (where the full profile ran an experiment, from
``results/full``).

Verdicts follow fixed rules (RULES, named in each claim's row), so that a rerun with other
results can change them: "reproduces", "partly", "does not reproduce", "not tested". Each claim
states n (seeds, trials, runs, cells or pairs) and the 95% interval of what it judges. Errata in a
source (a sign printed wrong, say), and claims that could run only on a stand-in data set, are
listed apart from the verdicts.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from ..methods.registry import title
from ..studies import stats
from . import fig1, grids
from .format import full_results, holding, md_table, percent, read_csv, run_record, span
from .speed import ratio
from ..engine.results import GridStore
from ..studies.stacks import PUBLISHED, STAND_IN, ablation, comparison, helps_share

NOT_TESTED = "not tested"


@dataclass(frozen=True)
class Claim:
    source: str
    claim: str
    evidence: str
    verdict: str
    section: str
    n: str = ""             # what the verdict counts: seeds, trials, runs, cells, pairs
    interval: str = ""      # the judged quantity with its 95% interval
    rule: str = ""          # a key of RULES
    erratum: bool = False   # a slip in a source (a sign, say), listed apart from the verdicts
    stand_in: bool = False  # judged on a stand-in data set only: listed apart, never tallied


#: The verdict rules, each able to return every outcome; the summary table names one per claim.
RULES = {
    "majority": "the claim holds in a share of cases; reproduces when the share's 95% Wilson "
                "interval lies above 1/2, does not when it lies below, partly when it contains 1/2 "
                "(a tie counts as a case where the claim does not hold)",
    "paired": "runs pair by seed (same initial weights, same minibatch order); a pair is better "
              "or worse when the 95% t interval of the per-seed difference excludes 0, a tie when "
              "it contains 0; an HD run that diverged where its base did not makes the pair "
              "worse; values counted in whole steps (α₀ of a grid, test images) get at least the "
              "spread of rounding to the step, so agreement on every seed is not read as no noise",
    "rows": "each row's effect err_none − err_clip (or − err_arm), paired by seed, 95% t "
            "interval: helps above 0 and ≥ 1 point, hurts below 0 and ≤ −1 point, no effect "
            "inside ±1 point, else inconclusive (the trials' spread exceeds the difference)",
    "two parts": "the claim has two parts, each with its own interval test (in the row); "
                 "reproduces when both hold, partly when one does, does not when neither",
    "bound": "reproduces when every check is within its tolerance, partly when one kind of "
             "check is, does not when none is",
    "cost": "reproduces when the 95% interval of the iteration-time ratio lies at or below "
            "1.10, does not when it lies above 1.5, partly otherwise",
    "paper's cell": "per optimizer, the paper's cell is best when its per-seed difference from "
                    "the best other cell (95% t interval) contains 0 or lies below; reproduces "
                    "for both optimizers, partly for one, does not for neither",
    "trains": "reproduces when the divergence probability's 95% Wilson interval lies below 1/2, "
              "does not when above, partly when it contains 1/2",
    "wider": "reproduces when HD, at one β, brings more α₀ to the threshold than its base for "
             "every HD optimizer, partly for some, does not for none",
    "second order": "reproduces when most cells converge at every γ (Wilson lower bound above "
                    "1/2) and the claimed γ are best with none worse (paired over cells), partly "
                    "when one holds, does not when neither",
}



majority = stats.majority


def _prefer_full(results: Path, name: str, record: str | None) -> tuple[Path, str]:
    """results/full when it holds ``name`` (the papers' scale) and its run `record` there says the
    last run finished (one cut off holds only some of the runs a claim is judged on), else this
    results folder. With no `record`, results/full whenever it holds ``name``: for claims
    judged on runs paired by seed, which a store still being filled holds whole (n is stated)."""
    full = full_results(results)
    if (full / name).exists() and (record is None
                                   or run_record(full, record).get("finished", True)):
        return full, "full"
    return results, results.name


# -- the claims -------------------------------------------------------------------------------
def _of(share: stats.Interval) -> str:
    return f"{share.estimate * share.n:.0f} of {share.n}"


def _equivalence(results: Path) -> list[Claim]:
    from ..studies.grid_verdicts import two_parts
    rows = read_csv(results / "equivalence.csv")
    ad = [r for r in rows if r["check"] == "analytic vs autodiff"]
    fd = [r for r in rows if r["check"] == "analytic vs finite difference"]
    claim = ("h_t = −g_t·u_{t−1} (SGD, SGDN, Adam; additive and multiplicative) is the "
             "derivative of the loss with respect to α")
    if not ad or not fd:
        return [Claim("Baydin et al. §2", claim, "not run in these results", NOT_TESTED, "§1.1")]
    worst = max(max(float(r["alpha_rel_err"]), float(r["params_rel_err"])) for r in ad)
    worst_fd = max(float(r["h_rel_err"]) for r in fd)
    second = [r for r in ad if "2nd order" in r["case"]]
    beta = max((float(r["beta_rel_err"]) for r in second), default=math.nan)
    out = [Claim("Baydin et al. §2", claim,
                 f"analytic = reverse-mode autodiff to {worst:.1e} relative (tolerance 1e-10), "
                 f"= central finite differences to {worst_fd:.1e} (tolerance 1e-6), float64",
                 two_parts(worst <= 1e-10, worst_fd <= 1e-6), "§1.1",
                 n=f"{len(ad)} runs of {ad[0]['steps']} steps; {len(fd)} checks",
                 interval="worst case over all n (a bound)", rule="bound")]
    if second:
        out.append(Claim("reproducibility report §5", "second-order HD as printed: "
                         "β_t = β_{t−1} + γ ∂f/∂β",
                         f"the printed sign is gradient ascent on β; the descent form "
                         f"β_t = β_{{t−1}} + γ h_t h_{{t−1}} matches a height-3 autodiff tower to "
                         f"{beta:.1e} in β over {len(second)} runs (rule: confirmed when the "
                         f"descent form matches to ≤ 1e-10)",
                         "erratum confirmed" if beta <= 1e-10 else "erratum not confirmed",
                         "§1.1", erratum=True))
    return out


def _figure1(results: Path) -> list[Claim]:
    from ..studies import fig1 as fv
    folder, profile = _prefer_full(results, "fig1_final.csv", None)   # runs pair by seed
    final = fig1.fig1_frame(folder)
    source = "Baydin et al. Fig. 2; reproducibility report Fig. 1"
    claim = ("at the same α₀, SGD-HD, SGDN-HD and Adam-HD reach lower training and validation "
             "loss than SGD, SGDN and Adam")
    pairs = fv.paired(final)
    if pairs.empty:
        return [Claim(source, claim, "not run in these results", NOT_TESTED, "§1.2")]
    verdict, share = fv.loss_verdict(pairs)
    tally = "; ".join(
        f"{what}: " + ", ".join(f"{int((pairs[f'{what}_outcome'] == k).sum())} {k}"
                                for k in ("better", "tie", "worse"))
        for what in ("train", "val"))
    lost = int((pairs.hd_lost > 0).sum())
    runs = fv.alpha_runs(final, fig1.fig1_frame(folder, "iterations"))
    decays = stats.proportion(int(runs.decays.sum()), len(runs))
    return [
        Claim(source, claim,
              f"HD better on both losses in {_of(share)} model × optimizer pairs ({tally})"
              + (f"; HD diverged where its base did not in {lost}" if lost else "")
              + f" ({profile} profile)", verdict, "§1.2",
              n=f"{len(pairs)} pairs × {span(pairs.seeds)} seeds",
              interval=f"share better {percent(share)}", rule="paired, then majority"),
        Claim("Baydin et al. §4", "α_t rises early in training, then decays toward a small "
              "value (Adam-HD's smoothly)",
              f"α_t peaked above α₀ in the first half of training and ended at half its peak "
              f"or less in {_of(decays)} HD runs ({int(runs.diverged.sum())} diverged, counted "
              f"against); {fig1.fig1_sampling(folder)} ({profile} profile)",
              majority(decays), "§1.2", n=f"{len(runs)} runs", interval=percent(decays),
              rule="majority")]


def _tuning(results: Path) -> list[Claim]:
    from ..studies.sensitivity import MIN_SEEDS, judged, pair_tuning, tally, tuning_verdict
    folder, profile = _prefer_full(results, "family_sensitivity.jsonl", None)  # whole sweeps
    frame = GridStore(folder / "family_sensitivity.jsonl").frame()
    claim = "HD significantly reduces the need to tune the initial learning rate α₀"
    pairs = pair_tuning(frame) if not frame.empty else frame
    if pairs.empty:
        return [Claim("Baydin et al., abstract", claim, "not run in these results", NOT_TESTED,
                      "App. A.1")]
    verdict, share = tuning_verdict(pairs)
    done = judged(pairs)
    if done.empty:
        return [Claim("Baydin et al., abstract", claim,
                      f"one seed per pair: no change in the near-best α₀ range can be told from "
                      f"the noise (a pair is judged from {MIN_SEEDS} seeds on) ({profile} profile)",
                      verdict, "App. A.1", n=f"{len(pairs)} pairs, 1 seed",
                      interval="none (no spread over seeds)", rule="paired, then majority")]
    waiting = len(pairs) - len(done)
    return [Claim("Baydin et al., abstract", claim,
                  f"near-best α₀ range (within 10% of the best validation loss, measured on the "
                  f"test set as in Baydin et al.'s code), HD − base "
                  f"paired by seed: {tally(done)} of {len(done)} optimizer–model pairs"
                  + (f"; {waiting} pair{'s' * (waiting != 1)} with one seed so far not judged"
                     if waiting else "")
                  + f" ({profile} profile)", verdict, "App. A.1",
                  n=f"{len(done)} pairs × {span(done.seeds)} seeds",
                  interval=f"share wider {percent(share)}", rule="paired, then majority")]


def _threshold(results: Path) -> list[Claim]:
    from ..studies.threshold import summary, verdict
    folder, profile = _prefer_full(results, "threshold_grid.jsonl", "threshold_grid_run.json")
    frame = GridStore(folder / "threshold_grid.jsonl").frame()
    claim = ("HD reduces the need to tune α₀: over a large region of α₀ × β it reaches a "
             "training loss of 0.29 in no more iterations than its base optimizer")
    source = "Baydin et al., tuning figure"
    if frame.empty:
        return [Claim(source, claim, "not run in these results", NOT_TESTED, "§1.3")]
    s = summary(frame)
    reach = "; ".join(f"{title(r.hd)} {r.hd_reach} vs {r.base_reach}" for r in s.itertuples())
    fast = "; ".join(f"{title(r.hd)} {percent(r.fast)}" for r in s.itertuples())
    return [Claim(source, claim,
                  f"LogReg, iterations to a minibatch loss of 0.29: α₀ (of 6) that reach it, HD "
                  f"at one β vs its base: {reach} ({profile} profile)", verdict(s), "§1.3",
                  n=f"{int(s.fast.map(lambda x: x.n).sum())} runs, {int(s.seeds.max())} seeds "
                  f"per cell", interval=f"runs at least as fast as the base: {fast}",
                  rule="wider")]


def _cost(results: Path) -> list[Claim]:
    claim = "HD costs little: one extra copy of the gradient and a dot product per step"
    rivals = holding(results, "bench_rivals_cpu.csv") / "bench_rivals_cpu.csv"
    if not rivals.exists():
        return [Claim("Baydin et al. §2", claim, "not measured in these results", NOT_TESTED,
                      "App. B")]
    row = pd.read_csv(rivals).set_index("method").loc["adam-hd"]
    iteration = stats.Interval(float(row["ratio"]), float(row.get("ratio_low", row["ratio"])),
                               float(row.get("ratio_high", row["ratio"])), int(row["repeats"]))
    step = ratio(results, "cpu", "Adam-HD (ours)", "Adam (fused)", "resnet")
    foreach = ratio(results, "cpu", "Adam (foreach)", "Adam (fused)", "resnet")
    interval = (f"{iteration.estimate:.2f}× [{iteration.low:.2f}, {iteration.high:.2f}] "
                "(bootstrap over rounds)" if "ratio_low" in row else
                f"{iteration.estimate:.2f}× (no interval recorded)")
    return [Claim("Baydin et al. §2", claim,
                  f"a whole MLNN iteration with Adam-HD against Adam's, CPU; the optimizer step "
                  f"alone takes {step} of torch's fused Adam step (torch's own foreach Adam: "
                  f"{foreach})", cost_verdict(iteration), "App. B",
                  n=f"{iteration.n} interleaved rounds", interval=interval, rule="cost")]


def cost_verdict(iteration: stats.Interval) -> str:
    """HD's cost claim from a whole iteration's time against the base optimizer's."""
    if math.isnan(iteration.estimate):
        return NOT_TESTED
    return ("reproduces" if iteration.high <= 1.10 else "does not reproduce"
            if iteration.low > 1.5 else "partly")


def _grids(results: Path) -> list[Claim]:
    folder, profile = _prefer_full(results, "grid_logreg.jsonl", "grid_logreg_run.json")
    where = f"{profile} profile"
    out = [c for c in (_logreg_grid(results, folder, where), _mlnn_grid(folder, where))
           if c is not None]
    out += _bettercnn_grid(folder, where)
    gamma = grids.grid_frame(folder, "gamma")
    if not gamma.empty:
        out.append(_second_order(gamma, where))
    return out


def _seeds_grid(results: Path, name: str) -> tuple[pd.DataFrame, str]:
    """A seeds grid's rows, from the full profile when it ran there."""
    for folder, profile in ((full_results(results), "full"), (results, results.name)):
        frame = GridStore(folder / f"grid_{name}.jsonl").frame()
        # a run still under way holds some seeds of some cells: judge only a finished one
        if not frame.empty and run_record(folder, f"grid_{name}_run.json").get("finished"):
            return frame, f"{profile} profile"
    return pd.DataFrame(), ""


def _logreg_grid(results: Path, folder: Path, where: str) -> Claim | None:
    from ..studies import grid_verdicts as gv
    source, claim = ("reproducibility report §4.1 (Fig. 2)",
                     "LogReg: the HD variants are best at the paper's setting α₀ = β = 1e-3")
    seeds, seeds_where = _seeds_grid(results, "seeds_logreg")
    rows = [r for r in (gv.paper_cell_vs_best(seeds, o) for o in ("sgd-hd", "sgdn-hd"))
            if r is not None] if not seeds.empty else []
    if rows:
        text = "; ".join(f"{title(r['optimizer'])} ranks {r['rank']} of {r['cells']}, "
                         f"{r['outcome']} than the best cell"
                         + (f" (α₀={r['best'][0]:g}, β={r['best'][1]:g})" if r["best"] else "")
                         for r in rows)
        interval = "; ".join(
            f"{title(r['optimizer'])} {r['difference'].estimate:+.3g} "
            f"[{r['difference'].low:+.3g}, {r['difference'].high:+.3g}]" for r in rows)
        return Claim(source, claim, f"by mean final training loss: {text} ({seeds_where})",
                     gv.paper_cell_verdict(rows), "§2.1",
                     n=f"{span([r['seeds'] for r in rows])} seeds per cell",
                     interval=f"paper − best: {interval}", rule="paper's cell")
    ranks = grids.paper_setting_ranks(folder)
    if not ranks:
        return None
    text = "; ".join(f"{r['optimizer']} ranks {r['rank']} of {r['cells']}" for r in ranks)
    first = sum(r["rank"] == 1 for r in ranks)
    return Claim(source, claim, f"{text} converged cells by final training loss ({where})",
                 "reproduces" if first == len(ranks) else "partly" if first else
                 "does not reproduce", "§2.1", n="1 seed",
                 interval="none: one seed has no spread", rule="paper's cell")


def _mlnn_grid(folder: Path, where: str) -> Claim | None:
    from ..studies import grid_verdicts as gv
    panels = {p.optimizer: st for p, st in grids.grid_panels(folder, "mlnn")[1]
              if p.rule == "additive"}
    if not panels:
        return None
    pr = gv.problematic(panels)
    shares = "; ".join(f"{title(o)} {_of(v)}" for o, v in pr["shares"].items())
    gaps = "; ".join(f"Adam-HD − {title(o)} {g.estimate:+.0%} [{g.low:+.0%}, "
                     f"{g.high:+.0%}]" for o, g in pr["gaps"].items())
    return Claim("reproducibility report §4.2 (Fig. 3)", "MLNN: for many (α₀, β) HD is "
                 "problematic (worse than the baseline, or NaN), particularly for Adam-HD",
                 f"cells diverged or worse than the baseline: {shares}; "
                 + _parts(zip((f"\"many\", the pooled share's interval at or above "
                               f"{gv.MANY:.0%}", "\"particularly\", Adam-HD's share above "
                               "each other's"), pr["parts"])) + f" ({where}). "
                 f"{_seeds_divergence('seeds_mlnn', folder, ('adam-hd',))}",
                 pr["verdict"], "§2.1", n=f"{pr['pooled'].n} cells, 1 seed",
                 interval=f"pooled {percent(pr['pooled'])}; {gaps} (Newcombe)", rule="two parts")


def _parts(parts) -> str:
    """A "two parts" rule's parts, each with whether it held: (text, held) pairs."""
    return "parts: " + ", ".join(f"{text} ({'held' if held else 'did not hold'})"
                                 for text, held in parts)


def _seeds_divergence(name: str, folder: Path, optimizers: tuple[str, ...]) -> str:
    """The contested region's divergence over seeds, pooled over its HD cells."""
    frame = GridStore(folder / f"grid_{name}.jsonl").frame()
    if frame.empty:
        return ""
    hd = frame[frame.optimizer.isin(optimizers) & ~frame.baseline.astype(bool)]
    p = stats.proportion(int(hd.diverged.astype(bool).sum()), len(hd))
    return (f"Over {hd.seed.nunique()} seeds of the contested region, {_of(p)} HD runs "
            f"diverged ({percent(p)}; §2.2).")


def _bettercnn_grid(folder: Path, where: str) -> list[Claim]:
    from ..studies import grid_verdicts as gv
    cnn = grids.bettercnn_split(folder)
    out = []
    if cnn:
        b = gv.bettercnn(cnn["large_beta"], cnn["worse"], cnn["converged"])
        out.append(Claim(
            "reproducibility report §4.3 (Fig. 4)", "BetterCNN: for β > 1e-3 HD does not "
            "converge; 39% of the converging cells are worse than the baseline",
            f"β > 1e-3 cells diverged: {_of(b['diverged'])}; converged cells worse than the "
            f"baseline: {_of(b['worse'])}; "
            + _parts(zip(("most β > 1e-3 cells diverge", "the worse share's interval contains "
                          "39%"), b["parts"])) + f" ({where})", b["verdict"], "§2.1",
            n=f"{b['diverged'].n} + {b['worse'].n} cells, 1 seed",
            interval=f"diverged {percent(b['diverged'])}; worse {percent(b['worse'])}",
            rule="two parts"))
    seeds = GridStore(folder / "grid_seeds_bettercnn.jsonl").frame()
    if not seeds.empty:
        p = gv.divergence_at(seeds, ("sgd-hd", "sgdn-hd"))
        out.append(Claim(
            "reproducibility report §4.3", "BetterCNN at the original hyperparameters "
            "(α₀ = β = 1e-3): \"the results are similar\" to the paper's",
            f"SGD-HD and SGDN-HD diverged in {_of(p)} runs, 10% of MNIST, 100 epochs; why: "
            f"§2.3", gv.mostly_trains(p), "§2.1", n=f"{p.n} runs (seeds × 2 optimizers)",
            interval=f"divergence probability {percent(p)}", rule="trains"))
    return out


def _second_order(frame: pd.DataFrame, where: str) -> Claim:
    from ..studies import second_order as so
    claim = ("\"training loss converged around the optimal value for every γ, while for "
             "γ = 1e-1 to 1e-2 training loss had the best values\" (second-order HD, LogReg)")
    source = "reproducibility report §5 (Fig. 5)"
    verdict, d = so.verdict(frame)
    if verdict == NOT_TESTED:
        return Claim(source, claim, "the report's variant (multiplicative rule, printed sign) "
                     f"not run in these results ({where})", NOT_TESTED, "§2.4")
    conv = "; ".join(f"γ={r.gamma:g} {r.converged.estimate * r.cells:.0f}/{r.cells} "
                     f"[{r.converged.low:.0%}, {r.converged.high:.0%}]"
                     for r in d["table"].itertuples())
    judged = [j for _, j in d["pairs"].values()]
    counts = ", ".join(f"{judged.count(k)} {k}" for k in ("better", "tie", "worse"))
    descent = so.verdict(frame, ("multiplicative", "derived"))[0]
    cells = int(d["table"].cells.max())
    return Claim(source, claim,
                 f"on the report's variant (multiplicative rule, β's update as printed): lowest "
                 f"median final loss at γ = {d['best']:g}; γ ∈ {{1e-1, 1e-2}} against the other "
                 f"γ, paired over cells: {counts}. With β's update as derived (descent) the same "
                 f"rule gives: {descent}; the additive rule in §2.4 ({where})", verdict, "§2.4",
                 n=f"{cells} cells per γ", interval=f"converged (loss below ln 10): {conv}",
                 rule="second order")


def _tally(rows: pd.DataFrame, column: str = "we_say") -> str:
    outcomes = ("helps", "no effect", "hurts", "inconclusive")
    return ", ".join(f"{int((rows[column] == k).sum())} {k}" for k in outcomes
                     if (rows[column] == k).any())


def _stack_comparisons(results: Path) -> tuple[pd.DataFrame, str]:
    """Every table's rows beside the report's, from the full profile where it ran that table."""
    frames = {p: GridStore(f / "stacks_clipping.jsonl").frame()
              for p, f in (("full", full_results(results)), (results.name, results))}
    parts, used = [], {}
    for table in PUBLISHED:
        for profile, frame in frames.items():
            c = comparison(frame, table) if not frame.empty and table in set(frame.table) else None
            if c is not None and not c.empty:
                parts.append(c.assign(table=table))
                used[table] = profile
                break
    where = ", ".join(sorted(set(used.values())))
    return (pd.concat(parts) if parts else pd.DataFrame()), f"{where} profile"


def _clipping(results: Path) -> list[Claim]:
    comp, where = _stack_comparisons(results)
    source = "clipping report §4 (Tables 1–4, MNIST)"
    if comp.empty:
        return [Claim(source, "clipping lowers test error at large secondary α", "not run",
                      NOT_TESTED, "§3")]
    mnist = comp[comp.table != STAND_IN]
    out = []
    for says, claim in (("no effect", "at small secondary α clipping has negligible effect"),
                        ("helps", "at large secondary α clipping lowers test error, by a few "
                                  "points to about 80")):
        rows = mnist[mnist.report_says == says]
        if rows.empty:
            out.append(Claim(source, claim, f"no row where the report says \"{says}\" was run "
                             f"({where})", NOT_TESTED, "§3"))
            continue
        share = stats.proportion(int((rows.we_say == says).sum()), len(rows))
        out.append(Claim(source, claim,
                         f"on the {len(rows)} rows where the report says \"{says}\", ours: "
                         f"{_tally(rows)} ({where})", majority(share), "§3",
                         n=f"{len(rows)} rows × {span(rows.trials)} trials",
                         interval=f"share \"{says}\" {percent(share)}", rule="rows, then majority"))
    cnn = comp[comp.table == STAND_IN]
    if len(cnn):
        out.append(Claim("clipping report Table 5", "the same on CIFAR-10 with a small CNN",
                         f"CIFAR-10 is not on our machines; on the Fashion-MNIST stand-in our "
                         f"rows say {_tally(cnn)} where the report's say "
                         f"{_tally(cnn, 'report_says')}", NOT_TESTED + " (stand-in data)", "§3",
                         n=f"{len(cnn)} rows × {span(cnn.trials)} trials", rule="rows",
                         stand_in=True))
    out.extend(_ablation(results))
    return out


def _ablation(results: Path) -> list[Claim]:
    from ..studies.grid_verdicts import two_parts
    for folder, profile in ((full_results(results), "full"), (results, results.name)):
        frame = GridStore(folder / "stacks_clipping.jsonl").frame()
        ab = ablation(frame) if not frame.empty else pd.DataFrame()
        if not ab.empty:
            break
    else:
        return []
    ab = ab[ab.table != STAND_IN]
    if ab.empty:
        return []
    pseudo, half = helps_share(ab, "pseudo"), helps_share(ab, "half")
    parts = (pseudo.low > 0.5, half.high < 0.5)
    return [Claim("clipping report §3", "the gains come from clipping the hypergradient",
                  f"on the MNIST rows where the code's clipping lowered our mean error by "
                  f"≥ 1 point: clipping as the pseudo-code states it {_tally(ab, 'pseudo_says')};"
                  f" the secondary α halved without clipping {_tally(ab, 'half_says')}; "
                  + _parts(zip(("clipping helps on most rows", "the halved rate helps on few"),
                               parts)) + f" ({profile} profile)",
                  two_parts(*parts), "§3",
                  n=f"{len(ab)} rows × {span(ab.trials)} trials",
                  interval=f"clipping helps {percent(pseudo)}; halved rate helps {percent(half)}",
                  rule="rows, then two parts")]


CLAIMS: tuple[Callable[[Path], list[Claim]], ...] = (
    _equivalence, _figure1, _tuning, _threshold, _cost, _grids, _clipping)


def claims(results: Path) -> list[Claim]:
    """Every claim judged on the results (the verdict table and the abstract both read them)."""
    return list(_judged(results, _stamp(results)))


def _stamp(results: Path) -> tuple:
    """What the judgements depend on: the files of this folder and of the full profile's beside
    it, with their sizes and times, so that a result written since is judged afresh."""
    folders = dict.fromkeys([results, full_results(results)])
    return tuple((str(f), p.name, p.stat().st_size, p.stat().st_mtime_ns)
                 for f in folders if f.is_dir() for p in sorted(f.iterdir()) if p.is_file())


@functools.lru_cache(maxsize=4)
def _judged(results: Path, stamp: tuple) -> tuple[Claim, ...]:
    return tuple(c for judge in CLAIMS for c in judge(results))


def claims_table(results: Path) -> str:
    found = claims(results)
    rows = [c for c in found if not c.erratum and not c.stand_in]
    errata = [c for c in found if c.erratum]
    stand_ins = [c for c in found if c.stand_in]
    tally = {v: sum(c.verdict.startswith(v) for c in rows)
             for v in ("reproduces", "partly", "does not reproduce", NOT_TESTED)}
    summary = (f"Of the {len(rows)} claims below, **{tally['reproduces']} reproduce**, "
               f"{tally['partly']} partly, **{tally['does not reproduce']} "
               f"{'does' if tally['does not reproduce'] == 1 else 'do'} not**, and "
               f"{tally[NOT_TESTED]} could not be tested here.")
    body = [[i + 1, f"{c.claim} ({c.source})", c.evidence, c.n, c.interval, c.rule,
             f"**{c.verdict}**", c.section] for i, c in enumerate(rows)]
    text = summary + "\n\n" + md_table(
        ["#", "claim (source)", "our evidence", "n", "95% interval", "rule", "verdict",
         "details"], body)
    used = [r for r in RULES if any(r in c.rule for c in rows)]
    text += "\n\nRules (each can return every outcome):\n\n" + "\n".join(
        f"- *{r}*: {RULES[r]}." for r in used)
    if errata:
        text += ("\n\nErrata in the sources, checked apart from the claims (a slip in how a "
                 "source states a result is not a result that fails to reproduce):\n\n"
                 + md_table(["source", "as printed", "our check", "outcome", "details"],
                            [[c.source, c.claim, c.evidence, f"**{c.verdict}**", c.section]
                             for c in errata]))
    if stand_ins:
        text += ("\n\nClaims whose data set is not on our machines, run on a stand-in and kept "
                 "apart (no verdict, not counted above):\n\n"
                 + md_table(["source", "claim", "on the stand-in", "n", "verdict", "details"],
                            [[c.source, c.claim, c.evidence, c.n, f"**{c.verdict}**", c.section]
                             for c in stand_ins]))
    return text
