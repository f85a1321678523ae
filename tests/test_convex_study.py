"""The convex study (hdrepro.studies.convex): its verdict rule can return every outcome, the
evaluation counts and f* are read as documented, and on a small problem HDM-Best nears L-BFGS
while gradient descent trails."""
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from hdrepro.studies.convex import ConvexCell, ConvexSpec, Problem, evals_to, run_method, verdict
from hdrepro.report import extensions


def _table(hdm, lbfgs, budget=100):
    rows = []
    for seed, (h, l_) in enumerate(zip(hdm, lbfgs), 1):
        rows += [{"seed": seed, "method": "hdm-best", "evals": h, "budget": budget},
                 {"seed": seed, "method": "lbfgs", "evals": l_, "budget": budget}]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("hdm,lbfgs,outcome", [
    ([30, 32, 28], [20, 21, 19], "matches"),
    ([90, 95, 99], [20, 21, 19], "slower"),
    ([5, 6, 5], [20, 21, 19], "faster"),
    ([10, 90, 20], [20, 21, 19], "inconclusive"),
    ([math.nan, math.nan, math.nan], [20, 21, 19], "slower"),   # censored at the budget
])
def test_the_verdict_rule_can_return_every_outcome(hdm, lbfgs, outcome):
    result, ratio = verdict(_table(hdm, lbfgs))
    assert result == outcome and ratio.n == 3
    assert verdict(pd.DataFrame(columns=["seed", "method", "evals", "budget"]))[0] == \
        "not tested"


def _frame():
    """Two seeds; f* is the least final f of each seed's runs."""
    def run(seed, method, beta, curve):
        evals = list(range(1, len(curve) + 1))
        return {"seed": seed, "method": method, "beta": beta, "budget": len(curve),
                "evals": evals, "best_f": curve, "final_f": curve[-1]}
    return pd.DataFrame([
        run(1, "lbfgs", 0.0, [1.0, 0.5, 0.1, 0.1]), run(1, "hdm-best", 0.0, [1.0, 0.8, 0.3, 0.1]),
        run(1, "hd", 1e-2, [1.0, 0.9, 0.8, 0.7]), run(1, "hd", 1e-1, [1.0, 0.6, 0.2, 0.2]),
        run(2, "lbfgs", 0.0, [2.0, 1.0, 1.0, 1.0]), run(2, "hdm-best", 0.0, [2.0, 1.5, 1.2, 1.1]),
    ])


def test_evals_to_the_tolerance_and_the_best_beta():
    t = evals_to(_frame(), tol=1e-4).set_index(["seed", "method"])
    assert t.loc[(1, "lbfgs"), "evals"] == 3 and t.loc[(1, "hdm-best"), "evals"] == 4
    assert t.loc[(1, "hd"), "beta"] == 1e-1 and math.isnan(t.loc[(1, "hd"), "evals"])
    assert t.loc[(2, "lbfgs"), "evals"] == 2 and math.isnan(t.loc[(2, "hdm-best"), "evals"])
    assert t.loc[(2, "hdm-best"), "gap"] == pytest.approx(0.1)


def test_hdm_best_nears_lbfgs_on_a_small_problem_and_gd_trails():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 12, generator=gen, dtype=torch.float64) * torch.logspace(
        0, 1.5, 12, dtype=torch.float64)              # ill-conditioned, as images are
    y = (x @ torch.randn(12, 10, generator=gen, dtype=torch.float64)).argmax(1)
    final = {}
    for method in ("lbfgs", "hdm-best", "gd"):
        problem = Problem(x, y)
        curve = run_method(ConvexCell(method, 1, 200, 150), problem)
        # L-BFGS stops on its own once converged (no descent direction left)
        assert len(curve) <= 150 and all(b <= a for a, b in zip(curve, curve[1:]))
        final[method] = curve[-1]
    # HDM-Best ends far closer to L-BFGS's f than gradient descent does
    assert final["hdm-best"] - final["lbfgs"] < 0.1 * (final["gd"] - final["lbfgs"])


def test_the_spec_and_cells_refuse_bad_values():
    with pytest.raises(ValueError, match="method"):
        ConvexCell("adam", 1, 100, 10)
    with pytest.raises(ValueError, match="budget"):
        ConvexSpec(budget=1)
    cells = ConvexSpec(seeds=(1, 2), hd_betas=(1e-2, 1e-1)).cells()
    assert len(cells) == 2 * 6 and len({c.cell_id for c in cells}) == len(cells)


def test_the_report_section_states_n_the_interval_and_the_rule():
    frame = _frame().assign(size=200, data="mnist", n_train=60000, data_source="test",
                            device="cpu", seconds=1.0)
    text = extensions.convex_verdict(frame, Path("."))
    assert "n = 2 seeds" in text and "95% interval" in text and "[1/2, 2]" in text
    table = extensions.convex_table(frame, Path("."))
    assert "HDM-Best" in table and "L-BFGS" in table
