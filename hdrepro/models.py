"""Models in plain torch (no torchvision). The data/models issue adds BetterCNN, VGG and the
clipping report's networks; the core needs LogReg and small MLPs."""
from __future__ import annotations

from typing import Sequence

from torch import nn


class LogReg(nn.Sequential):
    """Logistic regression: Linear(784 → 10) on flattened images (Baydin et al.)."""

    def __init__(self, in_features: int = 784, classes: int = 10):
        super().__init__(nn.Flatten(), nn.Linear(in_features, classes))


class MLP(nn.Sequential):
    """Fully connected network, e.g. MLP((784, 1000, 1000, 10)) is Baydin et al.'s MLNN."""

    def __init__(self, sizes: Sequence[int] = (784, 1000, 1000, 10), activation=nn.ReLU):
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least input and output sizes, got {sizes}")
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(activation())
        super().__init__(*layers)
