r"""The classic optimizer family of the overview slides, as torch.optim builds it.

Every member comes from torch.optim (nothing is reimplemented); a name picks the class and the
arguments that make the variant:

=================  ===========================================  ================================
name               torch.optim                                   update (g_t the gradient)
=================  ===========================================  ================================
sgd                SGD                                           θ ← θ − α g
momentum           SGD(momentum=μ)                               b ← μ b + g;  θ ← θ − α b
nesterov           SGD(momentum=μ, nesterov=True)                θ ← θ − α (g + μ b)
adagrad            Adagrad                                       s ← s + g²;  θ ← θ − α g/(√s + ε)
adadelta           Adadelta                                      Zeiler's Δ = √(E[Δ²]+ε)/√(E[g²]+ε) g
rmsprop            RMSprop                                       v ← ρv + (1−ρ)g²;  θ ← θ − α g/(√v + ε)
rmsprop-centered   RMSprop(centered=True)                        v − m² in place of v
adam               Adam                                          θ ← θ − α m̂/(√v̂ + ε)
adamw              AdamW                                         Adam with decoupled decay
adamax             Adamax                                        √v̂ replaced by max(ρ₂u, |g|)
nadam              NAdam                                         Adam with Nesterov momentum
amsgrad            Adam(amsgrad=True)                            v̂ ← max(v̂, v)
radam              RAdam                                         Adam with rectified variance
=================  ===========================================  ================================

Each step above is α times a direction that does not depend on α, so each can be wrapped in
:class:`hdrepro.optim.HD` (``hd-<name>`` in :class:`hdrepro.methods.registry.OptimConfig`).
"""
from __future__ import annotations

import torch

#: name -> (torch.optim class name, the arguments that make the variant)
FAMILY: dict[str, tuple[str, dict]] = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": None}),
    "nesterov": ("SGD", {"momentum": None, "nesterov": True}),
    "adagrad": ("Adagrad", {}),
    "adadelta": ("Adadelta", {}),
    "rmsprop": ("RMSprop", {}),
    "rmsprop-centered": ("RMSprop", {"centered": True}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "adamax": ("Adamax", {}),
    "nadam": ("NAdam", {}),
    "amsgrad": ("Adam", {"amsgrad": True}),
    "radam": ("RAdam", {}),
}
#: the slides' optimizers (AdamW is torch's, not the slides')
SLIDES = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "rmsprop-centered",
          "adam", "adamax", "nadam", "amsgrad", "radam")
TITLES = {"sgd": "SGD", "momentum": "Momentum", "nesterov": "Nesterov", "adagrad": "AdaGrad",
          "adadelta": "AdaDelta", "rmsprop": "RMSProp", "rmsprop-centered": "RMSProp (centred)",
          "adam": "Adam", "adamw": "AdamW", "adamax": "AdaMax", "nadam": "NAdam",
          "amsgrad": "AMSGrad", "radam": "RAdam"}


def build(name: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
          **extra) -> torch.optim.Optimizer:
    """The torch.optim optimizer that `name` stands for; μ fills the momentum variants."""
    if name not in FAMILY:
        raise ValueError(f"Unknown optimizer {name!r}; the family is {', '.join(FAMILY)}")
    cls, variant = FAMILY[name]
    kw = {k: (momentum if v is None else v) for k, v in variant.items()}
    return getattr(torch.optim, cls)(params, lr=lr, weight_decay=weight_decay, **kw, **extra)
