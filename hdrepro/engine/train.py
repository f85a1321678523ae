"""One training loop for every optimizer of :mod:`hdrepro.methods.registry`: torch.optim
baselines, analytic HD, HD(...)-wrapped torch optimizers, the newer HD methods, the rivals and
autodiff stacks.

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

from ..autodiff import HyperStack
from ..config import check_fields, check_range, finite_nonneg
from ..methods.registry import OptimConfig, make_optimizer
from ..optim import MARTHE
from ..progress import progress_bar
from . import models
from .data import Data, DataConfig, Split, batches
from .floats import flushed_denormals

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
    one included), for what a run wants to record beyond the loss and α_t. On CPU, subnormal
    floats are flushed to zero for the run (:mod:`.floats`; recorded in the provenance)."""
    device = resolve_device(cfg.device)
    with flushed_denormals(device) as flushed:
        result = _train(cfg, data, device, on_step)
    result.provenance["flush_denormal"] = flushed
    return result


def _train(cfg: TrainConfig, data: Data, device: torch.device, on_step) -> RunResult:
    torch.manual_seed(cfg.seed)
    dtype = getattr(torch, cfg.dtype)
    model = models.prepare(models.build(cfg.model).to(device, dtype), device)
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




def _final(result, diverged_at, iters, seconds, last_alpha) -> dict:
    """The run's last record. A diverged run has the step it diverged at (= its iterations), NaN
    for every final number, and α after its last finite step (``last_finite_alpha``): the same
    fields :func:`hdrepro.engine.batched.train_cells` gives a diverged cell."""
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
