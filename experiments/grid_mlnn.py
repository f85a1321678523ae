"""Grid α₀ × β for SGD-HD, SGDN-HD and Adam-HD on the MLNN, 784-1000-1000-10 ReLU (the
reproducibility report's Figure 3), with the same grids for the multiplicative rule.

Claim (report, Figure 3): the paper's settings reproduce, but many other combinations are
problematic for the HD variants, particularly Adam-HD.
Setup (docs/report/setups.md): the first 6,000/1,000 MNIST images, batch 128, μ = 0.9, weight decay
1e-4, α₀ and β in {1e-6, …, 1e-1}, 100 epochs; cell value = final epoch's mean training loss.
Profiles: smoke 2×2 SGD-HD, 2% of MNIST, 1 epoch (seconds); quick a 3×3 grid (α₀ in {1e-3, 1e-2,
1e-1}, β in {1e-5, 1e-3, 1e-1}), both rules, 2 epochs (~1.5 min on 2 cores); full the report's 6×6
grids for 100 epochs (GPU).
"""
from grid_common import main
from grid_logreg import DECADES, HD, RULES

from hdrepro.cli_help import run_main
from hdrepro.engine.data import DataConfig
from hdrepro.studies.grids import GridSpec

PROFILES = {
    "smoke": GridSpec("mlnn", "mlnn", ("sgd-hd",), (1e-3, 1e-1), (1e-4, 1e-1), epochs=1,
                      data=DataConfig("mnist", 0.02)),
    "quick": GridSpec("mlnn", "mlnn", HD, (1e-3, 1e-2, 1e-1), (1e-5, 1e-3, 1e-1), epochs=2,
                      data=DataConfig("mnist", 0.1), rules=RULES),
    "full": GridSpec("mlnn", "mlnn", HD, DECADES, DECADES, epochs=100,
                     data=DataConfig("mnist", 0.1), rules=RULES),
}

if __name__ == "__main__":
    run_main(lambda: main(__doc__, PROFILES))
