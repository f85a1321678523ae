"""Grid α₀ × β for SGD-HD, SGDN-HD and Adam-HD on BetterCNN (the reproducibility report's
Figure 4), with the same grids for the multiplicative rule.

Claim (report, Figure 4): at the paper's settings the results reproduce; for β > 1e-3 the HD
variants diverge or hit precision errors, and 39% of the converging cells are worse than the
baseline.
Setup (docs/report/setups.md): the first 6,000/1,000 MNIST images, batch 128, μ = 0.9, weight decay
1e-4, α₀ and β in {1e-6, …, 1e-1}, 100 epochs; dropout off at evaluation (the report's code left
it on); cell value = final epoch's mean training loss.
Profiles: smoke 2×2 SGD-HD, 2% of MNIST, 1 epoch (seconds); quick a 3×3 grid (α₀ in {1e-3, 1e-2,
1e-1}, β in {1e-5, 1e-3, 1e-1}), both rules, 2 epochs (~2 min on 2 cores); full the report's 6×6
grids for 100 epochs (GPU).
"""
from grid_common import main
from grid_logreg import DECADES, HD, RULES

from hdrepro.cli_help import run_main
from hdrepro.engine.data import DataConfig
from hdrepro.studies.grids import GridSpec

PROFILES = {
    "smoke": GridSpec("bettercnn", "bettercnn", ("sgd-hd",), (1e-3, 1e-1), (1e-4, 1e-1),
                      epochs=1, data=DataConfig("mnist", 0.02)),
    "quick": GridSpec("bettercnn", "bettercnn", HD, (1e-3, 1e-2, 1e-1), (1e-5, 1e-3, 1e-1),
                      epochs=2, data=DataConfig("mnist", 0.1), rules=RULES),
    "full": GridSpec("bettercnn", "bettercnn", HD, DECADES, DECADES, epochs=100,
                     data=DataConfig("mnist", 0.1), rules=RULES),
}

if __name__ == "__main__":
    run_main(lambda: main(__doc__, PROFILES))
