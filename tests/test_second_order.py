"""The γ grid's summary: outcomes told apart (diverged, blew up without NaN, converged), and the
rule that judges the report's claim on its own variant, able to return every outcome."""
import math

import pandas as pd
import pytest

from hdrepro.studies import second_order as so

GAMMAS = (1e-1, 1e-2, 1e-3, 1e-4)
CELLS = [(a, b) for a in (1e-3, 1e-2, 1e-1) for b in (1e-4, 1e-3, 1e-2)]   # 9 cells per γ


def _frame(loss_of, rule="multiplicative", sign="printed") -> pd.DataFrame:
    """One seed, every γ × cell; loss_of(γ, i) gives a loss, or None for a diverged cell."""
    rows = []
    for g in GAMMAS:
        for i, (a, b) in enumerate(CELLS):
            loss = loss_of(g, i)
            rows.append({"baseline": False, "rule": rule, "second_order": sign, "gamma": g,
                         "alpha0": a, "beta": b, "seed": 1, "diverged": loss is None,
                         "train_loss": math.nan if loss is None else loss})
    return pd.DataFrame(rows)


def test_outcomes_tell_a_blow_up_without_nan_from_a_divergence():
    f = _frame(lambda g, i: None if i == 0 else 5.0 if i == 1 else 0.3)
    out = so.outcomes(f)
    first = out[out.gamma == 1e-1].set_index(["alpha0", "beta"])
    assert first.outcome[CELLS[0]] == "diverged" and first.outcome[CELLS[1]] == "blew up"
    assert first.capped[CELLS[1]] == pytest.approx(so.UNTRAINED)
    t = so.table(f).set_index("gamma")
    assert (t.diverged[1e-1], t.blew_up[1e-1], t.converged[1e-1].n) == (1, 1, 9)


def _claimed_best(g, i):     # every cell converges; the claimed γ are clearly lower, with spread
    return (0.20 if g in so.CLAIMED_BEST else 0.40) + 0.01 * i


@pytest.mark.parametrize("loss_of,want", [
    (_claimed_best, "reproduces"),
    (lambda g, i: 0.40 + 0.01 * i if g in so.CLAIMED_BEST else 0.20 + 0.01 * i, "partly"),
    (lambda g, i: None if g == 1e-4 and i < 7 else _claimed_best(g, i), "partly"),
    (lambda g, i: None if g == 1e-1 and i < 7 else 0.4 + 0.01 * i if g in so.CLAIMED_BEST
     else 0.2 + 0.01 * i, "does not reproduce"),
])
def test_the_claims_rule_can_return_every_outcome(loss_of, want):
    assert so.verdict(_frame(loss_of))[0] == want


def test_a_difference_inside_the_noise_is_a_tie_not_a_win():
    noisy = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.25, 0.75, 0.5]
    f = _frame(lambda g, i: noisy[i] + (0.0 if g in so.CLAIMED_BEST else 0.01 * (-1) ** i))
    judged = [j for _, j in so.best_gamma_test(f)["pairs"].values()]
    assert set(judged) == {"tie"}
    assert so.verdict(f)[0] == "partly"      # converges everywhere, but the claimed γ only tie


def test_only_the_reports_variant_is_judged():
    ours = _frame(_claimed_best, rule="additive", sign="derived")
    assert so.verdict(ours)[0] == "not tested"
    both = pd.concat([ours, _frame(lambda g, i: None)], ignore_index=True)
    assert so.verdict(both)[0] == "does not reproduce"
