"""Train K grid cells of one model at once: stacked weights, one vmap'ed forward/backward, and
:class:`~hdrepro.optim.batched.BatchedHD` stepping every cell with its own α₀, β, γ and state.

It is the same training as :func:`hdrepro.train.train` for each cell, up to floating-point
reordering (tests/test_grid.py checks final losses and divergence flags): the same seeded
initial weights (torch.manual_seed(seed), then the model is built), the same minibatch order (a
generator seeded with the seed), the same dropout masks (vmap draws them once for all cells from
the global generator, as the one-cell run draws them), coupled weight decay, cross-entropy, and the
same divergence rule: a cell has diverged at the first minibatch whose loss is NaN/inf. Nothing is
read back to the host inside an epoch.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from . import models
from .data import Data, batches
from .optim.batched import BatchedHD


@dataclass(frozen=True)
class CellHParams:
    """One cell's hyperparameters: α₀, β (0 for the plain optimizer), γ."""
    lr: float
    hypergrad_lr: float = 0.0
    hyper_hypergrad_lr: float = 0.0


def _stack_params(model: nn.Module, k: int) -> dict[str, Tensor]:
    return {name: p.detach().unsqueeze(0).repeat((k,) + (1,) * p.dim()).requires_grad_()
            for name, p in model.named_parameters()}


def train_cells(model_name: str, kind: str, cells: list[CellHParams], data: Data, *,
                epochs: int, batch_size: int = 128, seed: int = 1, rule: str = "additive",
                momentum: float = 0.9, weight_decay: float = 1e-4,
                device: torch.device | str = "cpu") -> list[dict]:
    """Train every cell for `epochs`; return one dict per cell with the final epoch's mean
    training loss, the validation loss and test error (validation = test set, as in train()),
    the divergence flag and step, and the final α and β."""
    device = torch.device(device)
    k = len(cells)
    torch.manual_seed(seed)
    model = models.build(model_name).to(device)
    params = _stack_params(model, k)
    opt = BatchedHD(list(params.values()), kind, [c.lr for c in cells],
                    [c.hypergrad_lr for c in cells], [c.hyper_hypergrad_lr for c in cells],
                    rule=rule, momentum=momentum, weight_decay=weight_decay)

    def loss_of(p, x, y):
        return nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

    losses_of = vmap(loss_of, in_dims=(0, None, None), randomness="same")
    train_split, test_split = data.train.to(device), data.test.to(device)
    gen = torch.Generator().manual_seed(seed)
    diverged_at = torch.zeros(k, dtype=torch.int64, device=device)
    it, t0 = 0, time.perf_counter()
    model.train()
    for _ in range(epochs):
        epoch_sum = torch.zeros(k, device=device)
        n = 0
        for x, y in batches(train_split, batch_size, generator=gen):
            opt.zero_grad()
            losses = losses_of(params, x, y)
            losses.sum().backward()
            opt.step()
            it += 1
            n += 1
            losses = losses.detach()
            epoch_sum += losses
            first = ~torch.isfinite(losses) & (diverged_at == 0)
            diverged_at = torch.where(first, it, diverged_at)
        if bool((diverged_at > 0).all()):
            break
    val_loss, val_acc = _evaluate(model, params, test_split)
    seconds = time.perf_counter() - t0
    train_loss = epoch_sum / n
    out = []
    for i in range(k):
        bad = int(diverged_at[i]) > 0
        nan = float("nan")
        out.append({"diverged": bad, "diverged_at": int(diverged_at[i]) if bad else None,
                    "train_loss": nan if bad else float(train_loss[i]),
                    "val_loss": nan if bad else float(val_loss[i]),
                    "test_error": nan if bad else 1 - float(val_acc[i]),
                    "final_alpha": float(opt.lr[i]), "final_beta": float(opt.hypergrad_lr[i]),
                    "iterations": it, "seconds": seconds, "cells_in_batch": k})
    return out


@torch.no_grad()
def _evaluate(model: nn.Module, params: dict[str, Tensor], split, batch_size: int = 1000):
    """(mean cross-entropy, accuracy) per cell over a split, in eval mode (dropout off)."""
    model.eval()

    def outputs(p, x):
        return functional_call(model, p, (x,))

    out_of = vmap(outputs, in_dims=(0, None))
    k = next(iter(params.values())).shape[0]
    loss = torch.zeros(k, dtype=torch.float64, device=split.x.device)
    correct = torch.zeros(k, dtype=torch.float64, device=split.x.device)
    for x, y in batches(split, batch_size, shuffle=False):
        out = out_of(params, x)                                    # (K, B, classes)
        ce = nn.functional.cross_entropy(out.flatten(0, 1), y.repeat(k), reduction="none")
        loss += ce.view(k, -1).sum(1).double()
        correct += (out.argmax(-1) == y).sum(1).double()
    model.train()
    return (loss / len(split)).tolist(), (correct / len(split)).tolist()


def cell_steps_per_second(cells: int, iterations: int, seconds: float) -> float:
    """Throughput measure used by bench/bench_grid.py."""
    return cells * iterations / seconds if seconds > 0 else math.nan
