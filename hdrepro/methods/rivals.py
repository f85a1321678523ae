r"""The learning-rate-free optimizers users reach for instead of tuning α: Prodigy, D-Adaptation,
Schedule-Free AdamW and DoG, each run with its authors' protocol.

They come from their own packages (the ``rivals`` extra of pyproject; the set-up installs it):
``prodigyopt``, ``dadaptation``, ``schedulefree``, ``dog-optimizer``. Each name takes two
settings:

=====================  =========================================  ===============================
name                   ``setting="default"``                       ``setting="recommended"``
=====================  =========================================  ===============================
prodigy                Prodigy(lr=1), constant                     + cosine annealing over the run,
                                                                   5% linear warm-up with
                                                                   ``safeguard_warmup=True`` (its
                                                                   README)
dadapt-adam            DAdaptAdam(lr=1), constant                  ``use_bias_correction=True``
                                                                   (without it d overshoots on a
                                                                   small MLP: docs/report/setups.md)
schedulefree-adamw     AdamWScheduleFree(lr=0.0025), no warm-up    5% warm-up (``warmup_steps``)
dog                    DoG(lr=1), last iterate evaluated           evaluated at the polynomial-
                                                                   decay average (γ = 8), as its
                                                                   authors evaluate
=====================  =========================================  ===============================

What each adapts, in its authors' symbols: Prodigy and D-Adaptation step with d_t·lr, where d_t
is a running lower bound on the distance D = ‖x₀ − x*‖ (initial estimate ``d0``); DoG steps with
η_t = max_{i≤t} ‖x_i − x₀‖ / √(Σ_{i≤t} ‖g_i‖²), starting from r_ε = ``reps_rel``·(1 + ‖x₀‖);
Schedule-Free keeps no schedule: it evaluates at an average x_t of its iterates z_t, which is why
it must be switched with ``train()``/``eval()``. The scale each starts from (``d0``, ``reps_rel``,
Schedule-Free's ``lr``) is what :data:`SCALES` names, for the sensitivity sweep.

:func:`build` wraps the optimizer in :class:`Protocol`, which steps the schedule and the averager
after each step and gives :func:`hdrepro.engine.train.train` the model to evaluate.
"""
from __future__ import annotations

import contextlib
import importlib
import math

import torch
from torch import nn

#: rival -> (module, class, the pip package that provides it)
RIVALS = {"prodigy": ("prodigyopt", "Prodigy", "prodigyopt"),
          "dadapt-adam": ("dadaptation", "DAdaptAdam", "dadaptation"),
          "schedulefree-adamw": ("schedulefree", "AdamWScheduleFree", "schedulefree"),
          "dog": ("dog", "DoG", "dog-optimizer")}
TITLES = {"prodigy": "Prodigy", "dadapt-adam": "D-Adapt Adam",
          "schedulefree-adamw": "Schedule-Free AdamW", "dog": "DoG"}
#: each rival's lr argument at its default (Prodigy, D-Adaptation and DoG keep lr = 1 and
#: learn the scale; Schedule-Free's lr is a real step size)
DEFAULT_LR = {"prodigy": 1.0, "dadapt-adam": 1.0, "schedulefree-adamw": 0.0025, "dog": 1.0}
#: the initial scale each starts from, swept in the sensitivity figure: (argument, default)
SCALES = {"prodigy": ("d0", 1e-6), "dadapt-adam": ("d0", 1e-6),
          "schedulefree-adamw": ("lr", 0.0025), "dog": ("reps_rel", 1e-6)}
SETTINGS = ("default", "recommended")
WARMUP = 0.05  # share of the run spent warming up, where a rival's setting asks for warm-up


class RivalUnavailable(ImportError):
    pass


def available(name: str) -> bool:
    try:
        importlib.import_module(RIVALS[name][0])
        return True
    except ImportError:
        return False


def _class(name: str):
    module, cls, package = RIVALS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise RivalUnavailable(
            f"{name} needs the {package!r} package: pip install 'hdrepro[rivals]' "
            f"(or pip install {package})") from e


class Protocol:
    """An optimizer with its authors' protocol around it: a learning-rate multiplier schedule
    stepped after every step, an averaged model stepped after every step, and train/eval mode
    switching (Schedule-Free). Exposes ``param_groups``, ``state_dict`` and ``step`` like the
    optimizer; :meth:`evaluation_model` gives the model to evaluate."""

    def __init__(self, optimizer, schedule=None, averager=None):
        self.optimizer = optimizer
        self.scheduler = (torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
                          if schedule else None)
        self.averager = averager
        if hasattr(optimizer, "train"):
            optimizer.train()

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    def zero_grad(self, set_to_none: bool = True):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        loss = self.optimizer.step(closure)
        if self.scheduler is not None:
            self.scheduler.step()
        if self.averager is not None:
            self.averager.step()
        return loss

    @contextlib.contextmanager
    def evaluation_model(self, model: nn.Module):
        if self.averager is not None:
            yield self.averager.averaged_model
        elif hasattr(self.optimizer, "eval"):
            self.optimizer.eval()       # parameters moved to Schedule-Free's x_t …
            try:
                yield model
            finally:
                self.optimizer.train()  # … and back to y_t for training
        else:
            yield model

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None}

    def __repr__(self):
        return f"Protocol({self.optimizer.__class__.__name__})"


def warmup_cosine(total_steps: int, warmup: float = WARMUP, cosine: bool = True):
    """lr multiplier: linear warm-up over the first `warmup` share of steps, then cosine to 0
    (or constant 1 when ``cosine=False``)."""
    n_warm = max(1, round(warmup * total_steps)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        if not cosine:
            return 1.0
        done = (step - n_warm) / max(1, total_steps - n_warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
    return factor


def build(name: str, params, lr: float | None = None, weight_decay: float = 0.0,
          total_steps: int | None = None, model: nn.Module | None = None,
          setting: str = "default", **kwargs) -> Protocol:
    """The rival `name` with its `setting` (module docstring); ``kwargs`` go to its constructor
    (e.g. ``d0=1e-4``). ``lr=None`` takes its default."""
    if name not in RIVALS:
        raise ValueError(f"Unknown rival {name!r}; choose one of {', '.join(RIVALS)}")
    if setting not in SETTINGS:
        raise ValueError(f"Invalid setting {setting!r}; choose one of {SETTINGS}")
    lr = DEFAULT_LR[name] if lr is None else lr
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"Invalid learning rate for {name}: {lr} (it must be > 0)")
    recommended = setting == "recommended"
    if recommended and name in ("prodigy", "schedulefree-adamw") and not total_steps:
        raise ValueError(f"{name} with setting='recommended' needs total_steps (its warm-up)")
    cls = _class(name)
    schedule = averager = None
    if name == "prodigy" and recommended:
        kwargs.setdefault("safeguard_warmup", True)
        schedule = warmup_cosine(total_steps)
    if name == "dadapt-adam" and recommended:
        kwargs.setdefault("use_bias_correction", True)
    if name == "schedulefree-adamw" and recommended:
        kwargs.setdefault("warmup_steps", max(1, round(WARMUP * total_steps)))
    if name == "dog" and recommended:
        if model is None:
            raise ValueError("dog with setting='recommended' needs the model (its averager)")
        averager = importlib.import_module("dog").PolynomialDecayAverager(model, gamma=8.0)
    opt = cls(params, lr=lr, weight_decay=weight_decay, **kwargs)
    return Protocol(opt, schedule, averager)
