"""Layer 3, the methods: the classic optimizer family as torch.optim builds it (``family``), the
learning-rate-free rivals (``rivals``), ASGC (``asgc``), the gradient-magnitude histograms and
Adam's ε interval (``histograms``), and the one registry that builds any of them, or an HD
optimizer of :mod:`hdrepro.optim` or a stack of :mod:`hdrepro.autodiff`, from an
:class:`OptimConfig` (``registry``). Imports only the layers below it."""
from .registry import OptimConfig, make_optimizer, title

__all__ = ["OptimConfig", "make_optimizer", "title"]
