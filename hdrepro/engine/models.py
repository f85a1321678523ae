"""Models in plain torch (no torchvision), as the papers and their code define them."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from . import pooling


class LogReg(nn.Sequential):
    """Logistic regression: Linear(784 → 10) on flattened images (Baydin et al.)."""

    def __init__(self, in_features: int = 784, classes: int = 10):
        super().__init__(nn.Flatten(), nn.Linear(in_features, classes))


class MLP(nn.Sequential):
    """Fully connected network; MLP() is Baydin et al.'s MLNN, 784-1000-1000-10 with ReLU.

    ``output_activation`` adds an activation on the logits: Chandra et al.'s MNIST example (and
    the clipping report) put a tanh there, which bounds the logits to [-1, 1].
    """

    def __init__(self, sizes: Sequence[int] = (784, 1000, 1000, 10), activation=nn.ReLU,
                 output_activation=None):
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least input and output sizes, got {sizes}")
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(activation())
        if output_activation is not None:
            layers.append(output_activation())
        super().__init__(*layers)


def TanhMLP(output_tanh: bool = True) -> MLP:
    """Chandra et al.'s MNIST example: 784-128-10, tanh hidden, and tanh on the output if asked."""
    return MLP((784, 128, 10), activation=nn.Tanh,
               output_activation=nn.Tanh if output_tanh else None)


class BetterCNN(nn.Sequential):
    """The reproducibility report's CNN for 1×28×28 inputs (docs/setups.md).

    Conv(1→30, 5×5) → ReLU → MaxPool 2 → Conv(30→15, 3×3) → ReLU → MaxPool 2 → Dropout 0.2 →
    Linear(375→128) → ReLU → Linear(128→50) → ReLU → Linear(50→10). Dropout is off in eval()
    (the report's code left it on at evaluation; we do not copy that bug).

    Each ReLU runs after its pool rather than before: ReLU is monotone, so max-pool and ReLU
    commute value for value and gradient for gradient (the same element wins each window, and
    its gradient passes exactly when it is positive), on a quarter of the elements
    (tests/test_models.py checks the two orders bit for bit). The parameters keep their indices.

    On CPU, :func:`prepare` puts the convolutions and pools in channels-last layout, which
    oneDNN runs faster, and each pool and its ReLU then run as one operation
    (:mod:`.pooling`, bit for bit torch's pair); bench/bench_grid.py times the network against
    how it ran before. The features return to the standard layout before dropout, so that its
    mask is drawn in the same order as before.
    """

    def __init__(self, classes: int = 10):
        super().__init__(
            nn.Conv2d(1, 30, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(30, 15, 3), nn.MaxPool2d(2), nn.ReLU(),
            nn.Dropout(0.2), nn.Flatten(),
            nn.Linear(375, 128), nn.ReLU(), nn.Linear(128, 50), nn.ReLU(), nn.Linear(50, classes))

    FEATURES = 6   # the layers before dropout: convolutions, pools, ReLUs
    POOLS = (1, 4)   # each followed by its ReLU
    channels_last = False   # set by prepare() on CPU

    def forward(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        layers = iter(enumerate(self))
        for i, layer in layers:
            if i == self.FEATURES:
                x = x.contiguous()
            if i in self.POOLS and self.channels_last:
                x = pooling.max_pool2_relu(x)   # the pool and its ReLU as one operation
                next(layers)
            else:
                x = layer(x)
        return x


class ClipCNN(nn.Sequential):
    """The clipping report's CIFAR-10 CNN: two 3×3 16-filter convs (stride 1, no padding) with
    ReLU, then the tanh MLP's dense layers (128 hidden, tanh on hidden and output)."""

    def __init__(self, in_channels: int = 3, size: int = 32, classes: int = 10,
                 output_tanh: bool = True):
        flat = 16 * (size - 4) ** 2
        layers = [nn.Conv2d(in_channels, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(),
                  nn.Flatten(), nn.Linear(flat, 128), nn.Tanh(), nn.Linear(128, classes)]
        if output_tanh:
            layers.append(nn.Tanh())
        super().__init__(*layers)


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M")


class VGG16BN(nn.Sequential):
    """VGG-16 with batch norm (cfg D) for 3×32×32 inputs, classifier
    Dropout-512-ReLU-Dropout-512-ReLU-10 as in Baydin et al.'s code. ``width`` scales every
    channel count (1.0 is the paper's network; the quick profile uses a narrower one, and says so).
    """

    def __init__(self, classes: int = 10, width: float = 1.0):
        if width <= 0:
            raise ValueError(f"Invalid width: {width} (must be > 0)")
        layers: list[nn.Module] = []
        c_in = 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                c = max(1, int(round(v * width)))
                layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
                c_in = c
        hidden = max(1, int(round(512 * width)))
        layers += [nn.Flatten(), nn.Dropout(), nn.Linear(c_in, hidden), nn.ReLU(), nn.Dropout(),
                   nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes)]
        super().__init__(*layers)


#: how figures and tables name each model
TITLES = {"logreg": "LogReg", "mlnn": "MLNN", "bettercnn": "BetterCNN", "vgg16bn": "VGG-16",
          "vgg16bn-narrow": "VGG-16 (¼ width)"}

MODELS = {
    "logreg": lambda: LogReg(),
    "mlnn": lambda: MLP(),
    "bettercnn": lambda: BetterCNN(),
    "tanh-mlp": lambda: TanhMLP(output_tanh=True),
    "tanh-mlp-no-output-tanh": lambda: TanhMLP(output_tanh=False),
    "clip-cnn": lambda: ClipCNN(),
    "clip-cnn-28": lambda: ClipCNN(in_channels=1, size=28),   # for Fashion-MNIST / MNIST
    "vgg16bn": lambda: VGG16BN(),
    "vgg16bn-narrow": lambda: VGG16BN(width=0.25),
}


def prepare(model: nn.Module, device: torch.device) -> nn.Module:
    """The model in the memory layout it runs fastest in on `device`: BetterCNN in float32 on
    CPU in channels-last (its results then differ from the standard layout's by float rounding
    only: the convolutions sum in another order). Any other model as it is."""
    if (isinstance(model, BetterCNN) and device.type == "cpu"
            and model[0].weight.dtype == torch.float32):
        model.to(memory_format=torch.channels_last)
        model.channels_last = True
    return model


def build(name: str) -> nn.Module:
    """A model by name; an unknown name lists the known ones."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]()
