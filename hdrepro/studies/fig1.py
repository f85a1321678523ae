"""Figure 1's two claims judged run by run, with their uncertainty.

Loss (Baydin et al., Figure 2): for each model × (base, HD) pair, the runs pair by seed (same
initial weights, same minibatch order), so the quantity judged is the per-seed difference
d_s = loss_HD(s) − loss_base(s) of the final training and validation loss. Its mean gets a 95%
t interval over the n seeds both ran (:func:`hdrepro.studies.stats.paired_difference`); HD is "better"
when the interval lies below 0, "worse" when above, and a "tie" when it contains 0, the
difference being inside the seed noise. An HD run that diverged on a seed where its base did not
makes the pair "worse": a diverged run has no loss to pair.

α_t (Baydin et al. §4): each HD run that did not diverge is asked whether α_t rose above α₀ (by
more than 5%), peaked in the first half of training, and ended at half its peak or less. A run
logged with α's range between rows (``alpha_max``) is judged on that range, so a peak between
logged rows counts; older logs hold one sample per row, and the peak is the largest sample.
"""
from __future__ import annotations

import pandas as pd

from . import stats

PAIRS = (("SGD", "SGD-HD"), ("SGDN", "SGDN-HD"), ("Adam", "Adam-HD"))
RISE = 1.05    # α_t "rose": its peak above 1.05 α₀
DECAY = 0.5    # α_t "decayed": it ended at half its peak or less


def paired(final: pd.DataFrame, rule: str = "additive") -> pd.DataFrame:
    """One row per model × pair: seeds paired, HD runs diverged where the base did not, and for
    "train" and "val" the interval on HD − base (an :class:`hdrepro.studies.stats.Interval`) and its
    outcome ("better", "worse", "tie")."""
    rows = []
    if final.empty:
        return pd.DataFrame(rows)
    for model in final.model.unique():
        for base, hd in PAIRS:
            b = final[(final.model == model) & (final.optimizer == base)].set_index("seed")
            h = final[(final.model == model) & (final.optimizer == hd)
                      & (final.rule == rule)].set_index("seed")
            seeds = sorted(set(b.index) & set(h.index))
            if not seeds:
                continue
            b, h = b.loc[seeds], h.loc[seeds]
            lost = int((h.diverged.astype(bool) & ~b.diverged.astype(bool)).sum())
            row = {"model": model, "base": base, "hd": hd, "rule": rule, "seeds": len(seeds),
                   "hd_lost": lost}
            for what in ("train", "val"):
                d = stats.paired_difference(h[f"{what}_loss"], b[f"{what}_loss"])
                row[what] = d
                row[f"{what}_outcome"] = "worse" if lost else stats.judge(d)
            rows.append(row)
    return pd.DataFrame(rows)


def alpha_runs(final: pd.DataFrame, iterations: pd.DataFrame,
               rule: str = "additive") -> pd.DataFrame:
    """One row per HD run of `rule`: whether α_t rose, peaked early, and decayed (all False for
    a run that diverged, which counts against the claim)."""
    hd = final[final.optimizer.str.endswith("-HD") & (final.rule == rule)]
    rows = []
    for r in hd.itertuples():
        it = iterations[iterations.run_id == r.run_id]
        row = {"run_id": r.run_id, "model": r.model, "optimizer": r.optimizer, "seed": r.seed,
               "diverged": bool(r.diverged), "rises": False, "early": False, "decays": False}
        if not row["diverged"] and not it.empty:
            peak = it["alpha_max"].fillna(it["alpha"]) if "alpha_max" in it else it["alpha"]
            top = float(peak.max())
            row["rises"] = top > RISE * float(r.alpha0)
            row["early"] = row["rises"] and it.iteration[peak.idxmax()] < it.iteration.max() / 2
            row["decays"] = row["early"] and float(it.alpha.iloc[-1]) <= DECAY * top
        rows.append(row)
    return pd.DataFrame(rows)


def loss_verdict(pairs: pd.DataFrame) -> tuple[str, stats.Interval]:
    """The claim "HD reaches lower training and validation loss", on the share of pairs where
    HD is better on both (ties count as not better), by :func:`hdrepro.studies.stats.majority`."""
    if pairs.empty:
        return "not tested", stats.proportion(0, 0)
    both = int(((pairs.train_outcome == "better") & (pairs.val_outcome == "better")).sum())
    share = stats.proportion(both, len(pairs))
    return stats.majority(share), share

