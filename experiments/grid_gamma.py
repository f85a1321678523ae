"""Grid α₀ × β₀ for second-order SGD-HD at four hyper-hypergradient rates γ on logistic
regression (the reproducibility report's Figure 5).

Claim (report, Figure 5): training loss converges near the optimum for every γ, best for
γ = 1e-1 to 1e-2; higher-order HD lacks scale invariance and explodes in early steps.
Setup: as grid_logreg.py (first 6,000/1,000 MNIST images, batch 128, weight decay 1e-4, 50
epochs), SGD-HD with β learned at rate γ ∈ {1e-1, 1e-2, 1e-3, 1e-4}. Four variants: the
additive and the multiplicative rule, each with β's update as derived (descent, checked against
autodiff, REPORT.md §1.1) and as the report printed it (ascent). The report built its extension on
the multiplicative rule, so its variant is multiplicative with the printed sign. Its code was not
published, so the α₀ × β₀ axes are our reading of its figure.
Profiles: smoke 2×2 at one γ, 2% of MNIST, 1 epoch; quick the 6×6 grid at the four γ, 10 epochs
(~2 min on 2 cores); full 50 epochs.
"""
from grid_common import main
from grid_logreg import DECADES, RULES

from hdrepro.cli_help import run_main
from hdrepro.engine.data import DataConfig
from hdrepro.studies.grids import GridSpec

GAMMAS = (1e-1, 1e-2, 1e-3, 1e-4)
SIGNS = ("derived", "printed")
PROFILES = {
    "smoke": GridSpec("gamma", "logreg", ("sgd-hd",), (1e-3, 1e-1), (1e-4, 1e-1), epochs=1,
                      data=DataConfig("mnist", 0.02), gammas=(1e-2,), second_orders=SIGNS),
    "quick": GridSpec("gamma", "logreg", ("sgd-hd",), DECADES, DECADES, epochs=10,
                      data=DataConfig("mnist", 0.1), gammas=GAMMAS, rules=RULES,
                      second_orders=SIGNS),
    "full": GridSpec("gamma", "logreg", ("sgd-hd",), DECADES, DECADES, epochs=50,
                     data=DataConfig("mnist", 0.1), gammas=GAMMAS, rules=RULES,
                     second_orders=SIGNS),
}

if __name__ == "__main__":
    run_main(lambda: main(__doc__, PROFILES))
