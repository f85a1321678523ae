"""Divergence over seeds where the BetterCNN grid is contested: SGD-HD and SGDN-HD (additive
rule) at β ∈ {1e-4, 1e-3} × α₀ ∈ {1e-4, 1e-3, 1e-2}, the papers' α₀ = β = 1e-3 among them, with
the baseline rows, over 10 seeds (grid_bettercnn.py runs one).

Divergence at large β is chaotic: one seed says whether a cell diverged once, not how likely it
is. The summary (hdrepro.studies.grids.divergence_over_seeds) gives each cell's divergence probability
with Wilson's 95% interval. Setup as grid_bettercnn.py's full profile: the first 6,000/1,000
MNIST images, batch 128, μ = 0.9, weight decay 1e-4, 100 epochs.
Profiles: smoke 1 cell × 3 seeds, 2% of MNIST, 1 epoch (seconds); quick the region, 10 seeds,
2 epochs; full the region, 10 seeds, 100 epochs (GPU: minutes; 2 CPU cores: a day, resumable).
"""
from grid_common import main

from hdrepro.cli_help import run_main
from hdrepro.engine.data import DataConfig
from hdrepro.studies.grids import GridSpec

SEEDS = tuple(range(1, 11))
REGION = dict(optimizers=("sgd-hd", "sgdn-hd"), alphas=(1e-4, 1e-3, 1e-2), betas=(1e-4, 1e-3))
PROFILES = {
    "smoke": GridSpec("seeds_bettercnn", "bettercnn", ("sgd-hd",), (1e-3,), (1e-3,), epochs=1,
                      data=DataConfig("mnist", 0.02), seeds=(1, 2, 3)),
    "quick": GridSpec("seeds_bettercnn", "bettercnn", epochs=2, data=DataConfig("mnist", 0.1),
                      seeds=SEEDS, **REGION),
    "full": GridSpec("seeds_bettercnn", "bettercnn", epochs=100, data=DataConfig("mnist", 0.1),
                     seeds=SEEDS, **REGION),
}

if __name__ == "__main__":
    run_main(lambda: main(__doc__, PROFILES))
