"""The LogReg grid's SGD-HD and SGDN-HD panels (additive rule, every α₀ × β, with the baseline
rows) over 10 seeds (grid_logreg.py runs one), so that "the HD variants are best at the paper's
α₀ = β = 1e-3" is judged against the seed noise: the paper's cell counts as best when its
per-seed difference from the best other cell has a 95% interval that contains 0 or lies below.
Setup as grid_logreg.py's full profile: the first 6,000/1,000 MNIST images, batch 128, μ = 0.9,
weight decay 1e-4, 50 epochs.
Profiles: smoke 2 cells × 3 seeds, 2% of MNIST, 1 epoch (seconds); quick the panels, 10 seeds,
10 epochs; full the panels, 10 seeds, 50 epochs (2 CPU cores: minutes, batched cells).
"""
from grid_common import main
from grid_logreg import DECADES

from hdrepro.cli_help import run_main
from hdrepro.engine.data import DataConfig
from hdrepro.studies.grids import GridSpec

SEEDS = tuple(range(1, 11))
PANELS = ("sgd-hd", "sgdn-hd")
PROFILES = {
    "smoke": GridSpec("seeds_logreg", "logreg", ("sgd-hd",), (1e-3,), (1e-3, 1e-2), epochs=1,
                      data=DataConfig("mnist", 0.02), seeds=(1, 2, 3)),
    "quick": GridSpec("seeds_logreg", "logreg", PANELS, DECADES, DECADES, epochs=10,
                      data=DataConfig("mnist", 0.1), seeds=SEEDS),
    "full": GridSpec("seeds_logreg", "logreg", PANELS, DECADES, DECADES, epochs=50,
                     data=DataConfig("mnist", 0.1), seeds=SEEDS),
}

if __name__ == "__main__":
    run_main(lambda: main(__doc__, PROFILES))
