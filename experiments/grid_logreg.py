"""Grid α₀ × β for SGD-HD, SGDN-HD and Adam-HD on logistic regression (the reproducibility
report's Figure 2), with the same grids for the multiplicative rule.

Claim (report, Figure 2): on LogReg the HD variants are best at the paper's settings (α₀ = 1e-3,
β = 1e-3 for SGD-HD/SGDN-HD) and the baselines scale with α₀ as in Baydin et al.
Setup (docs/report/setups.md): the first 6,000/1,000 MNIST images, batch 128, μ = 0.9, weight decay
1e-4, α₀ and β in {1e-6, …, 1e-1}, 50 epochs; cell value = final epoch's mean training loss.
Profiles: smoke 2×2 SGD-HD, 2% of MNIST, 1 epoch (seconds); quick the report's 6×6 grids, both
rules, 10 epochs (~1 min on 2 cores); full the report's 50 epochs (GPU: seconds).
"""
from grid_common import main

from hdrepro.cli_help import run_main
from hdrepro.engine.data import DataConfig
from hdrepro.studies.grids import GridSpec

DECADES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
HD = ("sgd-hd", "sgdn-hd", "adam-hd")
RULES = ("additive", "multiplicative")
PROFILES = {
    "smoke": GridSpec("logreg", "logreg", ("sgd-hd",), (1e-3, 1e-1), (1e-4, 1e-1), epochs=1,
                      data=DataConfig("mnist", 0.02)),
    "quick": GridSpec("logreg", "logreg", HD, DECADES, DECADES, epochs=10,
                      data=DataConfig("mnist", 0.1), rules=RULES),
    "full": GridSpec("logreg", "logreg", HD, DECADES, DECADES, epochs=50,
                     data=DataConfig("mnist", 0.1), rules=RULES),
}

if __name__ == "__main__":
    run_main(lambda: main(__doc__, PROFILES))
