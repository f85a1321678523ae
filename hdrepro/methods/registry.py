"""The one registry of the optimizers the studies train with: each name, how an
:class:`OptimConfig` of that name is built, and its title in figures, tables and logs.

Names (``OptimConfig.name``):

- a torch.optim optimizer of :mod:`hdrepro.methods.family` (sgd, momentum, nesterov, adagrad, …),
  or sgdn (= nesterov, Baydin et al.'s name);
- sgd-hd, sgdn-hd, adam-hd: analytic HD (:mod:`hdrepro.optim`);
- hdm, hdm-scalar: :class:`hdrepro.optim.HDM` (lr = P₀, hypergrad_lr = its AdaGrad rate η);
- marthe: :class:`hdrepro.optim.MARTHE` (hypergrad_lr = β; ``options=(("mu", 1.0),)`` for RTHO,
  μ automatic by default);
- a learning-rate-free rival of :mod:`hdrepro.methods.rivals` (prodigy, dadapt-adam,
  schedulefree-adamw, dog);
- hd-<family name>, e.g. hd-rmsprop: :class:`hdrepro.optim.HD` around the torch.optim optimizer;
- asgc-<family name>: :class:`hdrepro.methods.asgc.ASGC` around it;
- stack:<primary>/<secondary> (e.g. stack:adam/sgd; the secondary's lr is hypergrad_lr) or
  stack:<primary>: an autodiff stack (:mod:`hdrepro.autodiff`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn
from torch.optim import Optimizer

from ..autodiff import SGD as StackSGD
from ..autodiff import AdaGrad as StackAdaGrad
from ..autodiff import Adam as StackAdam
from ..autodiff import HyperStack
from ..autodiff import RMSProp as StackRMSProp
from ..autodiff import chandra
from ..config import check_fields, check_range, finite_nonneg
from ..optim import HD, HDM, MARTHE, SECOND_ORDER, SGDHD, AdamHD
from . import family, rivals
from .asgc import ASGC

STACK_LEVELS = {"sgd": StackSGD, "adam": StackAdam, "adagrad": StackAdaGrad,
                "rmsprop": StackRMSProp}
#: clip modes of a stack's SGD secondary: off, the clipping report's code (the first, all-zero
#: hypergradient counted in the average), its pseudo-code (only non-zero hypergradients counted)
CLIP_MODES = ("none", "code", "pseudo")
MARTHE_OPTIONS = ("mu",)

RATES = {"lr": "the learning rate α₀",
         # a negative rate would step uphill: α (or β) would climb the loss it should descend
         "hypergrad_lr": "the hypergradient learning rate β (a negative β would move α up the "
                         "loss's slope instead of down; 0 turns HD off)",
         "hyper_hypergrad_lr": "β's learning rate γ (a negative γ would ascend; 0 keeps β fixed)",
         "weight_decay": "the weight decay"}


@dataclass(frozen=True)
class OptimConfig:
    """An optimizer by name (the module docstring lists the names) with its hyperparameters.

    Stacks take ``conventions="chandra"`` for the levels of Chandra et al.'s package
    (:func:`hdrepro.autodiff.chandra`), and ``clip`` from CLIP_MODES for an SGD secondary.
    ``options`` holds further keyword arguments as (name, value) pairs: the torch.optim class's
    (e.g. ``(("eps", 1e-6),)`` for adam or hd-adam), ASGC's, MARTHE's or a rival's
    (see :func:`hdrepro.methods.rivals.build`).
    """
    name: str
    lr: float                       # α₀
    hypergrad_lr: float = 0.0       # β
    hyper_hypergrad_lr: float = 0.0  # γ
    rule: str = "additive"
    momentum: float = 0.9           # μ for sgdn / sgdn-hd (Baydin et al.'s script)
    weight_decay: float = 1e-4      # for every method, baselines too (Baydin et al.'s script)
    clip: str = "none"              # stacks: the clipping report's averaged clipping (CLIP_MODES)
    conventions: str = "torch"      # stacks: "torch" (torch.optim's) or "chandra" (gdtuo's)
    options: tuple[tuple[str, object], ...] = ()   # extra keyword arguments (see above)
    second_order: str = "derived"   # β's update when γ > 0: "derived" or the report's "printed"

    def __post_init__(self):
        check_fields(self)
        for name, what in RATES.items():
            check_range(self, name, finite_nonneg(getattr(self, name)), "finite and >= 0", what)
        check_range(self, "momentum", 0 <= self.momentum < 1, "in [0, 1)")
        if self.clip not in CLIP_MODES:
            raise ValueError(f"Invalid clip {self.clip!r}; choose one of {CLIP_MODES}")
        if self.second_order not in SECOND_ORDER:
            raise ValueError(f"Invalid second_order {self.second_order!r}; choose one of "
                             f"{SECOND_ORDER}")
        if self.conventions not in ("torch", "chandra"):
            raise ValueError(f"Invalid conventions {self.conventions!r}; choose 'torch' or "
                             "'chandra'")

    @property
    def label(self) -> str:
        return title(self.name)


Builder = Callable[[OptimConfig, list, "int | None", "nn.Module | None"], Optimizer]


@dataclass(frozen=True)
class Entry:
    """A name's title, its builder, and whether ``OptimConfig.options`` reach it."""
    title: str
    build: Builder
    takes_options: bool = False


def _hd_args(cfg: OptimConfig) -> dict:
    return dict(hypergrad_lr=cfg.hypergrad_lr, rule=cfg.rule,
                hyper_hypergrad_lr=cfg.hyper_hypergrad_lr, second_order=cfg.second_order)


def _family(name: str) -> Builder:
    def build(cfg, params, total_steps, model):
        return family.build(name, params, cfg.lr, cfg.momentum, cfg.weight_decay,
                            **dict(cfg.options))
    return build


def _hdm(shape: str) -> Builder:
    def build(cfg, params, total_steps, model):
        return HDM(params, cfg.lr, hyper_lr=cfg.hypergrad_lr, shape=shape,
                   weight_decay=cfg.weight_decay)
    return build


def _rival(name: str) -> Builder:
    def build(cfg, params, total_steps, model):
        return rivals.build(name, params, cfg.lr, cfg.weight_decay, total_steps, model,
                            **dict(cfg.options))
    return build


def _marthe(cfg, params, total_steps, model) -> MARTHE:
    options = dict(cfg.options)
    unknown = sorted(set(options) - set(MARTHE_OPTIONS))
    if unknown:
        raise ValueError(f"Unknown MARTHE options {unknown}; it takes {list(MARTHE_OPTIONS)}")
    return MARTHE(params, cfg.lr, cfg.hypergrad_lr, mu=options.get("mu", "auto"),
                  weight_decay=cfg.weight_decay)


#: every name that is not a prefix form, with its title and builder
REGISTRY: dict[str, Entry] = {
    **{name: Entry(family.TITLES[name], _family(name), True) for name in family.FAMILY},
    "sgdn": Entry("SGDN", _family("nesterov")),
    "sgd-hd": Entry("SGD-HD", lambda cfg, params, *_: SGDHD(
        params, cfg.lr, weight_decay=cfg.weight_decay, **_hd_args(cfg))),
    "sgdn-hd": Entry("SGDN-HD", lambda cfg, params, *_: SGDHD(
        params, cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay,
        **_hd_args(cfg))),
    "adam-hd": Entry("Adam-HD", lambda cfg, params, *_: AdamHD(
        params, cfg.lr, weight_decay=cfg.weight_decay, **_hd_args(cfg))),
    "hdm": Entry("HDM", _hdm("diagonal")),
    "hdm-scalar": Entry("HDM (scalar)", _hdm("scalar")),
    "marthe": Entry("MARTHE", _marthe, True),
    **{name: Entry(rivals.TITLES[name], _rival(name), True) for name in rivals.RIVALS},
}


def _split(name: str) -> tuple[str, str] | None:
    """(prefix, rest) of a prefix form (hd-, asgc-, stack:), or None."""
    for prefix in ("hd-", "asgc-", "stack:"):
        if name.startswith(prefix):
            return prefix, name[len(prefix):]
    return None


def title(name: str) -> str:
    """How figures, tables and logs name the optimizer `name` (the name itself if unknown)."""
    if name in REGISTRY:
        return REGISTRY[name].title
    prefix, rest = _split(name) or (None, "")
    if prefix == "hd-" and rest in family.FAMILY:
        return f"{family.TITLES[rest]}-HD"
    if prefix == "asgc-" and rest in family.FAMILY:
        return f"ASGC ({family.TITLES[rest]})"
    if prefix == "stack:":
        return "stack " + "/".join(title(level) for level in rest.split("/"))
    return name


def make_optimizer(cfg: OptimConfig, params, total_steps: int | None = None,
                   model: nn.Module | None = None) -> Optimizer:
    """Build the optimizer that `cfg` names; an unknown name lists the known ones. A rival's
    schedule needs `total_steps`, and DoG's averaged model the `model`."""
    params = list(params)
    entry = REGISTRY.get(cfg.name)
    prefix, rest = _split(cfg.name) or (None, "")
    if cfg.options and not (entry.takes_options if entry else prefix in ("hd-", "asgc-")):
        raise ValueError(f"options= are for the family, hd-, asgc-, marthe and rival names, not "
                         f"{cfg.name!r}")
    if entry is not None:
        return entry.build(cfg, params, total_steps, model)
    if prefix in ("hd-", "asgc-") and rest in family.FAMILY:
        if prefix == "hd-":   # options: the torch.optim class's own (e.g. eps for Adam)
            return HD(_family(rest)(cfg, params, total_steps, model), **_hd_args(cfg))
        inner = family.build(rest, params, cfg.lr, cfg.momentum, cfg.weight_decay)
        return ASGC(inner, **dict(cfg.options))
    if prefix == "stack:":
        return HyperStack(params, _stack_levels(cfg, rest.split("/")))
    known = sorted(REGISTRY) + ["hd-<family name>", "asgc-<family name>",
                                "stack:<primary>/<secondary>"]
    raise ValueError(f"Unknown optimizer {cfg.name!r}; choose one of {', '.join(known)}")


def _stack_levels(cfg: OptimConfig, names: list[str]) -> list:
    if len(names) not in (1, 2) or any(x not in STACK_LEVELS for x in names):
        raise ValueError(f"Unknown stack {cfg.name!r}: use stack:<primary>/<secondary> or "
                         f"stack:<primary> with levels from {sorted(STACK_LEVELS)}")
    if cfg.clip != "none" and names[1:] != ["sgd"]:
        raise ValueError("clip applies to an SGD secondary only (as in the clipping report)")
    if cfg.conventions == "chandra":
        primary = chandra(names[0], cfg.lr)
    else:
        primary = STACK_LEVELS[names[0]](lr=cfg.lr)
    if len(names) == 1:
        return [primary]
    if names[1] == "sgd":
        secondary = StackSGD(lr=cfg.hypergrad_lr, clip=cfg.clip != "none",
                             clip_count_zero_first=cfg.clip == "code")
    else:
        secondary = STACK_LEVELS[names[1]](lr=cfg.hypergrad_lr)
    return [primary, secondary]
