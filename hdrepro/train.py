"""One training loop for every optimizer: torch.optim baselines, analytic HD, HD(...)-wrapped
torch optimizers and autodiff stacks.

Per iteration it records the training loss and α_t (β_t where learned); per epoch the mean training
loss, the validation loss and accuracy (the validation set is the test set, as in Baydin et al.'s
code). At the end it records the test error. A run whose loss becomes NaN/inf stops at once and is
recorded as diverged, with the iteration; it never raises to the caller. Runs are deterministic
given the seed (on CPU; cuDNN may add nondeterminism on GPU).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from . import models
from .autodiff import SGD as StackSGD
from .autodiff import AdaGrad as StackAdaGrad
from .autodiff import Adam as StackAdam
from .autodiff import HyperStack
from .autodiff import RMSProp as StackRMSProp
from .autodiff import chandra
from .data import Data, DataConfig, batches
from .optim import HD, LINEAR_IN_LR, SGDHD, AdamHD

BASELINES = {"sgd", "sgdn", "adam"}
ANALYTIC = {"sgd-hd", "sgdn-hd", "adam-hd"}
HD_WRAPPED = {f"hd-{c.__name__.lower()}" for c in LINEAR_IN_LR}
STACK_LEVELS = {"sgd": StackSGD, "adam": StackAdam, "adagrad": StackAdaGrad,
                "rmsprop": StackRMSProp}
#: clip modes of a stack's SGD secondary: off, the clipping report's code (the first, all-zero
#: hypergradient counted in the average), its pseudo-code (only non-zero hypergradients counted)
CLIP_MODES = ("none", "code", "pseudo")


@dataclass(frozen=True)
class OptimConfig:
    """An optimizer by name with its hyperparameters (the papers' symbols in comments).

    name: sgd, sgdn, adam (torch.optim baselines); sgd-hd, sgdn-hd, adam-hd (analytic HD);
    hd-<torch optimizer>, e.g. hd-rmsprop (HD(...) around torch.optim); stack:<primary>/<secondary>,
    e.g. stack:adam/sgd (autodiff stack; secondary lr = hypergrad_lr), or stack:<primary> alone.
    Stacks take ``conventions="chandra"`` for the levels of Chandra et al.'s package
    (:func:`hdrepro.autodiff.chandra`), and ``clip`` from CLIP_MODES for an SGD secondary.
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

    def __post_init__(self):
        if self.clip not in CLIP_MODES:
            raise ValueError(f"Invalid clip {self.clip!r}; choose one of {CLIP_MODES}")
        if self.conventions not in ("torch", "chandra"):
            raise ValueError(f"Invalid conventions {self.conventions!r}; choose 'torch' or "
                             "'chandra'")

    @property
    def label(self) -> str:
        names = {"sgd": "SGD", "sgdn": "SGDN", "adam": "Adam", "sgd-hd": "SGD-HD",
                 "sgdn-hd": "SGDN-HD", "adam-hd": "Adam-HD"}
        return names.get(self.name, self.name)


def make_optimizer(cfg: OptimConfig, params):
    """Build the optimizer that `cfg` names; an unknown name lists the known ones."""
    params = list(params)
    n, wd = cfg.name, cfg.weight_decay
    if n == "sgd":
        return torch.optim.SGD(params, cfg.lr, weight_decay=wd)
    if n == "sgdn":
        return torch.optim.SGD(params, cfg.lr, momentum=cfg.momentum, nesterov=True,
                               weight_decay=wd)
    if n == "adam":
        return torch.optim.Adam(params, cfg.lr, weight_decay=wd)
    hd = dict(hypergrad_lr=cfg.hypergrad_lr, rule=cfg.rule,
              hyper_hypergrad_lr=cfg.hyper_hypergrad_lr)
    if n == "sgd-hd":
        return SGDHD(params, cfg.lr, weight_decay=wd, **hd)
    if n == "sgdn-hd":
        return SGDHD(params, cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=wd, **hd)
    if n == "adam-hd":
        return AdamHD(params, cfg.lr, weight_decay=wd, **hd)
    if n in HD_WRAPPED:
        base = next(c for c in LINEAR_IN_LR if c.__name__.lower() == n[3:])
        return HD(base(params, lr=cfg.lr, weight_decay=wd), **hd)
    if n.startswith("stack:"):
        return HyperStack(params, _stack_levels(cfg))
    known = sorted(BASELINES | ANALYTIC | HD_WRAPPED) + ["stack:<primary>/<secondary>"]
    raise ValueError(f"Unknown optimizer {n!r}; choose one of {', '.join(known)}")


@dataclass(frozen=True)
class TrainConfig:
    model: str
    data: DataConfig
    optim: OptimConfig
    epochs: int
    batch_size: int = 128
    seed: int = 1
    device: str = "auto"            # "auto": CUDA when present
    log_every: int = 1              # record every k-th iteration (and always the last)
    progress: bool = True

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.log_every < 1:
            raise ValueError(f"epochs, batch_size and log_every must be >= 1 (got {self.epochs}, "
                             f"{self.batch_size}, {self.log_every})")


@dataclass
class RunResult:
    config: dict
    provenance: dict
    iterations: list[dict] = field(default_factory=list)   # iteration, epoch, loss, alpha, beta
    epochs: list[dict] = field(default_factory=list)       # epoch, train_loss, val_loss, val_acc
    final: dict = field(default_factory=dict)              # diverged, test_error, …


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def current_alpha_beta(opt) -> tuple[float, float]:
    group = opt.param_groups[0]
    beta = group.get("hypergrad_lr", float("nan"))
    if isinstance(opt, HyperStack):
        beta = opt.hyperparameters().get("1.lr", float("nan"))
    return float(group["lr"]), float(beta)


@torch.no_grad()
def evaluate(model: nn.Module, split, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a split, in eval mode (dropout off)."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for x, y in batches(split, batch_size, shuffle=False):
        out = model(x)
        loss += float(nn.functional.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
    model.train(was_training)
    return loss / len(split), correct / len(split)


def train(cfg: TrainConfig, data: Data,
          on_step: Callable[[int, torch.Tensor, object], None] | None = None) -> RunResult:
    """Train one model with one optimizer; never raises on divergence (it is recorded).
    ``on_step(iteration, loss, optimizer)``, if given, is called after every step (the diverging
    one included), for what a run wants to record beyond the loss and α_t."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = models.build(cfg.model).to(device)
    opt = make_optimizer(cfg.optim, model.parameters())
    train_split, test_split = data.train.to(device), data.test.to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    per_epoch = math.ceil(len(train_split) / cfg.batch_size)
    result = RunResult(config=_config_dict(cfg), provenance={**data.provenance,
                                                               "device": str(device)})
    diverged_at, it, t0 = None, 0, time.perf_counter()
    bar = tqdm(total=cfg.epochs * per_epoch, disable=not cfg.progress, leave=False,
               desc=f"{cfg.model} {cfg.optim.label} seed {cfg.seed}")
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        losses = []
        for x, y in batches(train_split, cfg.batch_size, generator=gen):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            it += 1
            if on_step is not None:
                on_step(it, loss, opt)
            value = float(loss.detach())
            losses.append(value)
            if not math.isfinite(value):
                diverged_at = it
                break
            if it % cfg.log_every == 0 or it == cfg.epochs * per_epoch:
                alpha, beta = current_alpha_beta(opt)
                result.iterations.append({"iteration": it, "epoch": epoch, "loss": value,
                                          "alpha": alpha, "beta": beta})
            bar.update()
        if diverged_at is not None:
            break
        val_loss, val_acc = evaluate(model, test_split)
        result.epochs.append({"epoch": epoch, "train_loss": sum(losses) / len(losses),
                              "val_loss": val_loss, "val_acc": val_acc})
    bar.close()
    result.final = _final(model, test_split, result, diverged_at, it, time.perf_counter() - t0)
    return result


def _stack_levels(cfg: OptimConfig) -> list:
    names = cfg.name[6:].split("/")
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


def _final(model, test_split, result, diverged_at, iters, seconds) -> dict:
    final = {"diverged": diverged_at is not None, "diverged_at": diverged_at,
             "iterations": iters, "seconds": seconds}
    if diverged_at is None:
        last = result.epochs[-1]
        final.update(train_loss=last["train_loss"], val_loss=last["val_loss"],
                     test_error=1 - last["val_acc"])
    else:
        final.update(train_loss=float("nan"), val_loss=float("nan"), test_error=float("nan"))
    return final


def _config_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["optimizer"] = cfg.optim.label
    return d
