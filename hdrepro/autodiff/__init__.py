"""Hyperoptimizer stacks (Chandra et al., NeurIPS 2022) with hypergradients by reverse-mode autodiff.

    from hdrepro.autodiff import HyperStack, Adam, SGD
    opt = HyperStack(model.parameters(), [Adam(lr=1e-3), SGD(lr=1e-5, clip=True)])
    ... loss.backward(); opt.step(); opt.zero_grad()
"""
from .clip import clip_init, clip_step
from .levels import (SGD, AdaGrad, AdaGradState, Adam, AdamState, Level, RMSProp, RMSPropState,
                     SGDState, chandra)
from .stack import HyperStack

__all__ = ["HyperStack", "Level", "SGD", "Adam", "AdaGrad", "RMSProp", "SGDState", "AdamState",
           "AdaGradState", "RMSPropState", "chandra", "clip_init",
           "clip_step"]
