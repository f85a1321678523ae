"""Divergence over seeds where the MLNN grid is contested: Adam-HD (additive rule) at
β ∈ {1e-5, 1e-4} and every α₀, with Adam's baseline row, over 10 seeds (grid_mlnn.py runs one).

Divergence at large β is chaotic: one seed says whether a cell diverged once, not how likely it
is. The summary (hdrepro.studies.grids.divergence_over_seeds) gives each cell's divergence probability
with Wilson's 95% interval. Setup as grid_mlnn.py's full profile: the first 6,000/1,000 MNIST
images, batch 128, μ = 0.9, weight decay 1e-4, 100 epochs.
Profiles: smoke 2 cells × 3 seeds, 2% of MNIST, 1 epoch (seconds); quick the region, 10 seeds,
2 epochs; full the region, 10 seeds, 100 epochs (GPU: minutes; 2 CPU cores: hours, resumable).
"""
from grid_common import main
from grid_logreg import DECADES

from hdrepro.cli_help import run_main
from hdrepro.engine.data import DataConfig
from hdrepro.studies.grids import GridSpec

SEEDS = tuple(range(1, 11))
PROFILES = {
    "smoke": GridSpec("seeds_mlnn", "mlnn", ("adam-hd",), (1e-3,), (1e-5, 1e-4), epochs=1,
                      data=DataConfig("mnist", 0.02), seeds=(1, 2, 3)),
    "quick": GridSpec("seeds_mlnn", "mlnn", ("adam-hd",), DECADES, (1e-5, 1e-4), epochs=2,
                      data=DataConfig("mnist", 0.1), seeds=SEEDS),
    "full": GridSpec("seeds_mlnn", "mlnn", ("adam-hd",), DECADES, (1e-5, 1e-4), epochs=100,
                     data=DataConfig("mnist", 0.1), seeds=SEEDS),
}

if __name__ == "__main__":
    run_main(lambda: main(__doc__, PROFILES))
