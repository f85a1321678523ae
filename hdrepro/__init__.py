"""hdrepro: hypergradient descent, reproduced (Baydin et al. 2018; Chandra et al. 2022)."""
from .methods.asgc import ASGC
from .optim import HD, SGDHD, AdamHD

__version__ = "0.1.0"
__all__ = ["SGDHD", "AdamHD", "HD", "ASGC", "__version__"]
