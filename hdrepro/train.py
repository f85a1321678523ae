"""One training loop for every optimizer: torch.optim baselines, analytic HD, HD(...)-wrapped
torch optimizers and autodiff stacks.

Per iteration it records the training loss and α_t (β_t where learned); per epoch the mean training
loss, the validation loss and accuracy (the validation set is the test set, as in Baydin et al.'s
code). At the end it records the test error. A run whose loss becomes NaN/inf stops at once and is
recorded as diverged, with the iteration; it never raises to the caller. With ``stop_below``, a
run stops at the first minibatch whose loss is at most that (Baydin et al.'s lossThreshold),
evaluates, and records that iteration as ``reached_at``. Runs are deterministic
given the seed (on CPU; cuDNN may add nondeterminism on GPU).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn
from .progress import progress_bar

from . import family, models, rivals
from .asgc import ASGC
from .autodiff import SGD as StackSGD
from .autodiff import AdaGrad as StackAdaGrad
from .autodiff import Adam as StackAdam
from .autodiff import HyperStack
from .autodiff import RMSProp as StackRMSProp
from .autodiff import chandra
from .config import check_fields, check_range, finite_nonneg
from .data import Data, DataConfig, Split, batches
from .optim import HD, HDM, MARTHE, SGDHD, AdamHD
from .optim._hypergrad import SECOND_ORDER

BASELINES = {"sgdn"} | set(family.FAMILY)
ANALYTIC = {"sgd-hd", "sgdn-hd", "adam-hd"}
#: HDM (Chu et al. 2025) with a diagonal or scalar stepsize: lr is P₀, hypergrad_lr its rate η
HDM_NAMES = {"hdm": "diagonal", "hdm-scalar": "scalar"}
#: MARTHE (Donini et al. 2020): hypergrad_lr is its β, options may set mu (default "auto")
MARTHE_OPTIONS = ("mu",)
HD_WRAPPED = {f"hd-{name}" for name in family.FAMILY}
ASGC_WRAPPED = {f"asgc-{name}" for name in family.FAMILY}
STACK_LEVELS = {"sgd": StackSGD, "adam": StackAdam, "adagrad": StackAdaGrad,
                "rmsprop": StackRMSProp}
#: clip modes of a stack's SGD secondary: off, the clipping report's code (the first, all-zero
#: hypergradient counted in the average), its pseudo-code (only non-zero hypergradients counted)
CLIP_MODES = ("none", "code", "pseudo")


RATES = {"lr": "the learning rate α₀",
         # a negative rate would step uphill: α (or β) would climb the loss it should descend
         "hypergrad_lr": "the hypergradient learning rate β (a negative β would move α up the "
                         "loss's slope instead of down; 0 turns HD off)",
         "hyper_hypergrad_lr": "β's learning rate γ (a negative γ would ascend; 0 keeps β fixed)",
         "weight_decay": "the weight decay"}


@dataclass(frozen=True)
class OptimConfig:
    """An optimizer by name with its hyperparameters (the papers' symbols in comments).

    name: a torch.optim optimizer of :mod:`hdrepro.family` (sgd, momentum, nesterov, adagrad, …),
    or sgdn (= nesterov, Baydin et al.'s name); sgd-hd, sgdn-hd, adam-hd (analytic HD); hdm,
    hdm-scalar (:class:`hdrepro.optim.HDM`, lr = P₀, hypergrad_lr = its AdaGrad rate η); marthe
    (:class:`hdrepro.optim.MARTHE`, hypergrad_lr = β, ``options=(("mu", 1.0),)`` for RTHO;
    μ is automatic by default);
    hd-<family name>, e.g. hd-rmsprop (:class:`HD` around torch.optim); asgc-<family name>
    (:class:`hdrepro.asgc.ASGC` around it); a learning-rate-free rival of :mod:`hdrepro.rivals`
    (prodigy, dadapt-adam, schedulefree-adamw, dog); stack:<primary>/<secondary>, e.g.
    stack:adam/sgd (autodiff stack; secondary lr = hypergrad_lr), or stack:<primary> alone.
    Stacks take ``conventions="chandra"`` for the levels of Chandra et al.'s package
    (:func:`hdrepro.autodiff.chandra`), and ``clip`` from CLIP_MODES for an SGD secondary.
    ``options`` holds further keyword arguments as (name, value) pairs: the torch.optim class's
    (e.g. ``(("eps", 1e-6),)`` for adam or hd-adam), ASGC's, or a rival's
    (see :func:`hdrepro.rivals.build`).
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
        names = {"sgd": "SGD", "sgdn": "SGDN", "adam": "Adam", "sgd-hd": "SGD-HD",
                 "sgdn-hd": "SGDN-HD", "adam-hd": "Adam-HD", "hdm": "HDM",
                 "hdm-scalar": "HDM (scalar)", "marthe": "MARTHE"}
        return names.get(self.name, self.name)


def make_optimizer(cfg: OptimConfig, params, total_steps: int | None = None,
                   model: nn.Module | None = None):
    """Build the optimizer that `cfg` names; an unknown name lists the known ones. A rival's
    schedule needs `total_steps`, and DoG's averaged model the `model`."""
    params = list(params)
    n, wd = cfg.name, cfg.weight_decay
    if cfg.options and (n in ANALYTIC or n in HDM_NAMES or n == "sgdn"
                        or n.startswith("stack:")):
        raise ValueError(f"options= are for the family, hd-, asgc-, marthe and rival names, not "
                         f"{n!r}")
    if n == "sgdn":
        n = "nesterov"
    if n in family.FAMILY:   # options: the torch.optim class's own (e.g. eps for Adam)
        return family.build(n, params, cfg.lr, cfg.momentum, wd, **dict(cfg.options))
    hd = dict(hypergrad_lr=cfg.hypergrad_lr, rule=cfg.rule,
              hyper_hypergrad_lr=cfg.hyper_hypergrad_lr, second_order=cfg.second_order)
    if n == "sgd-hd":
        return SGDHD(params, cfg.lr, weight_decay=wd, **hd)
    if n == "sgdn-hd":
        return SGDHD(params, cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=wd, **hd)
    if n == "adam-hd":
        return AdamHD(params, cfg.lr, weight_decay=wd, **hd)
    if n == "marthe":
        return _marthe(cfg, params)
    if n in HDM_NAMES:
        return HDM(params, cfg.lr, hyper_lr=cfg.hypergrad_lr, shape=HDM_NAMES[n],
                   weight_decay=wd)
    if n in HD_WRAPPED:
        return HD(family.build(n[3:], params, cfg.lr, cfg.momentum, wd, **dict(cfg.options)),
                  **hd)
    if n in ASGC_WRAPPED:
        return ASGC(family.build(n[5:], params, cfg.lr, cfg.momentum, wd), **dict(cfg.options))
    if n in rivals.RIVALS:
        return rivals.build(n, params, cfg.lr, wd, total_steps, model, **dict(cfg.options))
    if n.startswith("stack:"):
        return HyperStack(params, _stack_levels(cfg))
    known = sorted(BASELINES | ANALYTIC | set(HDM_NAMES) | {"marthe"} | set(rivals.RIVALS)) + [
        "hd-<family name>", "asgc-<family name>", "stack:<primary>/<secondary>"]
    raise ValueError(f"Unknown optimizer {n!r}; choose one of {', '.join(known)}")


DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class TrainConfig:
    model: str
    data: DataConfig
    optim: OptimConfig
    epochs: int
    batch_size: int = 128
    seed: int = 1
    device: str = "auto"            # "auto": CUDA when present
    log_every: int = 1              # an iteration row every k iterations (and at the last)
    progress: bool = True
    stop_below: float | None = None  # stop at the first minibatch loss <= this (Baydin et al.'s
    #                                  lossThreshold); final["reached_at"] is its iteration
    dtype: str = "float32"          # of the model, its optimizer state and the inputs

    def __post_init__(self):
        check_fields(self)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is not supported: use one of {DTYPES}")
        if self.epochs < 1 or self.batch_size < 1 or self.log_every < 1:
            raise ValueError(f"epochs, batch_size and log_every must be >= 1 (got {self.epochs}, "
                             f"{self.batch_size}, {self.log_every})")
        if self.stop_below is not None:
            check_range(self, "stop_below", finite_nonneg(self.stop_below), "finite and >= 0")


@dataclass
class RunResult:
    config: dict
    provenance: dict
    # iteration, epoch, loss (mean over the iterations since the previous row), alpha, beta,
    # alpha_min and alpha_max (α's range over the steps since the previous row)
    iterations: list[dict] = field(default_factory=list)
    # epoch, iteration (at its end), train_loss, val_loss, val_acc, seconds
    epochs: list[dict] = field(default_factory=list)
    final: dict = field(default_factory=dict)              # diverged, test_error, …


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"Invalid device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: this torch build or machine has no usable CUDA GPU; "
                         "use --device cpu (or auto)")
    return device


def current_alpha_beta(opt) -> tuple[float, float]:
    group = opt.param_groups[0]
    beta = group.get("hypergrad_lr", float("nan"))
    if isinstance(opt, HyperStack):
        beta = opt.hyperparameters().get("1.lr", float("nan"))
    # Prodigy and D-Adaptation step with d·lr: the step size they learned
    return float(group["lr"]) * float(group.get("d", 1.0)), float(beta)


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


def evaluation_model(opt, model: nn.Module):
    """The model to evaluate, as a context: the optimizer's own view where it has one (Schedule-Free
    evaluates at its averaged point x, DoG at its polynomial-decay average), else the model."""
    hook = getattr(opt, "evaluation_model", None)
    return hook(model) if hook is not None else contextlib.nullcontext(model)


def train(cfg: TrainConfig, data: Data,
          on_step: Callable[[int, torch.Tensor, object], None] | None = None) -> RunResult:
    """Train one model with one optimizer; never raises on divergence (it is recorded).
    ``on_step(iteration, loss, optimizer)``, if given, is called after every step (the diverging
    one included), for what a run wants to record beyond the loss and α_t."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    dtype = getattr(torch, cfg.dtype)
    model = models.build(cfg.model).to(device, dtype)
    train_split, val_split, test_split = (Split(s.x.to(device, dtype), s.y.to(device))
                                          for s in (data.train, data.validation, data.test))
    gen = torch.Generator().manual_seed(cfg.seed)
    per_epoch = math.ceil(len(train_split) / cfg.batch_size)
    opt = make_optimizer(cfg.optim, model.parameters(), cfg.epochs * per_epoch, model)
    result = RunResult(config=_config_dict(cfg), provenance={**data.provenance,
                                                               "device": str(device)})
    diverged_at, it, t0 = None, 0, time.perf_counter()
    last_alpha = math.nan   # α after the last step whose loss was finite (kept for inspection)
    reached_at = None       # the iteration whose minibatch loss first fell to cfg.stop_below
    bar = progress_bar(total=cfg.epochs * per_epoch, disable=not cfg.progress, leave=False,
               desc=f"{cfg.model} {cfg.optim.label} seed {cfg.seed}")
    model.train()
    since_record = []  # the losses since the last iteration row, which records their mean
    alpha_lo, alpha_hi = math.inf, -math.inf  # α's range since the last row, so peaks are seen
    for epoch in range(1, cfg.epochs + 1):
        losses = []
        for x, y in batches(train_split, cfg.batch_size, generator=gen):
            loss = train_step(opt, model, x, y)
            it += 1
            if on_step is not None:
                on_step(it, loss, opt)
            value = float(loss.detach())
            losses.append(value)
            since_record.append(value)
            if not math.isfinite(value):
                diverged_at = it
                break
            last_alpha = current_alpha_beta(opt)[0]
            alpha_lo, alpha_hi = min(alpha_lo, last_alpha), max(alpha_hi, last_alpha)
            if cfg.stop_below is not None and value <= cfg.stop_below:
                reached_at = it
                break
            if it % cfg.log_every == 0 or it == cfg.epochs * per_epoch:
                alpha, beta = current_alpha_beta(opt)
                result.iterations.append({"iteration": it, "epoch": epoch,
                                          "loss": sum(since_record) / len(since_record),
                                          "alpha": alpha, "beta": beta,
                                          "alpha_min": alpha_lo, "alpha_max": alpha_hi})
                since_record, alpha_lo, alpha_hi = [], math.inf, -math.inf
            bar.update()
        if diverged_at is not None:
            break
        with evaluation_model(opt, model) as judged:
            val_loss, val_acc = evaluate(judged, val_split)
        result.epochs.append({"epoch": epoch, "iteration": it,
                              "train_loss": sum(losses) / len(losses),
                              "val_loss": val_loss, "val_acc": val_acc,
                              "seconds": time.perf_counter() - t0})
        if reached_at is not None:
            break
    bar.close()
    result.final = _final(result, diverged_at, it, time.perf_counter() - t0, last_alpha)
    if data.val is not None and diverged_at is None:   # the test set, judged once, at the end
        with evaluation_model(opt, model) as judged:
            result.final["test_error"] = 1 - evaluate(judged, test_split)[1]
    if cfg.stop_below is not None:
        result.final["reached_at"] = reached_at
    return result


def _marthe(cfg: OptimConfig, params) -> MARTHE:
    options = dict(cfg.options)
    unknown = sorted(set(options) - set(MARTHE_OPTIONS))
    if unknown:
        raise ValueError(f"Unknown MARTHE options {unknown}; it takes {list(MARTHE_OPTIONS)}")
    return MARTHE(params, cfg.lr, cfg.hypergrad_lr, mu=options.get("mu", "auto"),
                  weight_decay=cfg.weight_decay)


def train_step(opt, model: nn.Module, x, y) -> torch.Tensor:
    """One optimizer step on the minibatch (x, y); the minibatch loss. MARTHE differentiates the
    loss twice (a Hessian-vector product), so it takes the loss as a closure instead."""
    if isinstance(opt, MARTHE):
        return opt.step(lambda: nn.functional.cross_entropy(model(x), y))
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


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


def _final(result, diverged_at, iters, seconds, last_alpha) -> dict:
    """The run's last record. A diverged run has the step it diverged at (= its iterations), NaN
    for every final number, and α after its last finite step (``last_finite_alpha``): the same
    fields :func:`hdrepro.batched.train_cells` gives a diverged cell."""
    final = {"diverged": diverged_at is not None, "diverged_at": diverged_at,
             "iterations": iters, "seconds": seconds, "last_finite_alpha": last_alpha}
    if diverged_at is None:
        last = result.epochs[-1]
        final.update(train_loss=last["train_loss"], val_loss=last["val_loss"],
                     val_error=1 - last["val_acc"], test_error=1 - last["val_acc"])
    else:
        final.update(train_loss=float("nan"), val_loss=float("nan"), val_error=float("nan"),
                     test_error=float("nan"))
    return final


def _config_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["optimizer"] = cfg.optim.label
    return d
