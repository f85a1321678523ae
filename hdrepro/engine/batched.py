"""Train K grid cells of one model at once: stacked weights, one batched forward/backward, and
:class:`~hdrepro.optim.batched.BatchedHD` stepping every cell with its own α₀, β, γ and state.

It is the same training as :func:`hdrepro.engine.train.train` for each cell, up to floating-point
reordering (tests/test_grid.py checks final losses and divergence flags): the same seeded
initial weights (torch.manual_seed(seed), then the model is built), the same minibatch order (a
generator seeded with the seed), the same dropout masks (one draw per forward with the one-cell
shape, from the global generator, shared by all cells), coupled weight decay, cross-entropy, and
the same divergence rule: a cell has diverged at the first minibatch whose loss is NaN/inf.
Nothing is read back to the host inside an epoch. Sequential models of Linear, Conv2d, ReLU,
Tanh, MaxPool2d, Dropout and Flatten run through :func:`stacked_forward`; any other model runs
through torch.func.vmap (slower: it materialises the shared input once per cell).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from . import models
from ..config import check_fields, check_range, finite_nonneg
from .data import Data, batches
from .floats import flushed_denormals
from ..optim.batched import BatchedHD


@dataclass(frozen=True)
class CellHParams:
    """One cell's hyperparameters: α₀, β (0 for the plain optimizer), γ."""
    lr: float
    hypergrad_lr: float = 0.0
    hyper_hypergrad_lr: float = 0.0

    def __post_init__(self):
        check_fields(self)
        for name in ("lr", "hypergrad_lr", "hyper_hypergrad_lr"):
            check_range(self, name, finite_nonneg(getattr(self, name)), "finite and >= 0")

STACKABLE = (nn.Flatten, nn.Linear, nn.Conv2d, nn.ReLU, nn.Tanh, nn.MaxPool2d, nn.Dropout)


def stackable(model: nn.Module) -> bool:
    """Whether `stacked_forward` handles the model (else train_cells falls back to vmap)."""
    return isinstance(model, nn.Sequential) and all(isinstance(m, STACKABLE) for m in model)


def stacked_forward(model: nn.Sequential, params: dict[str, Tensor], x: Tensor) -> Tensor:
    """Logits (K, B, classes) of K stacked copies of a Sequential model on one shared input.

    The input has no cell axis, so the first Linear/Conv2d runs all K cells as one wide layer
    (weights concatenated along the output features). After it, conv activations keep the cells
    in the channel axis, (B, K·C, H, W), and later convolutions are grouped (groups=K); dense
    activations are (K, B, F) and later Linear layers are one batched matmul. Dropout draws one
    mask with the one-cell shape, exactly as the one-cell model's forward draws it, and applies
    it to every cell. (vmap does the same job for any model, but materialises the shared input
    once per cell, which made it slower than one cell at a time.)
    """
    k = next(iter(params.values())).shape[0]
    h, layout = x, "shared"   # "shared": (B, …); "conv": (B, K·C, H, W); "dense": (K, B, F)
    for name, m in model.named_children():
        if isinstance(m, nn.Linear):
            w, b = params[f"{name}.weight"], params[f"{name}.bias"]
            if layout == "shared":
                h = nn.functional.linear(h, w.reshape(-1, w.shape[-1]), b.reshape(-1))
                h = h.view(h.shape[0], k, -1).transpose(0, 1)
            else:
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            layout = "dense"
        elif isinstance(m, nn.Conv2d):
            w, b = params[f"{name}.weight"], params[f"{name}.bias"]
            h = nn.functional.conv2d(h, w.reshape((-1,) + w.shape[2:]), b.reshape(-1), m.stride,
                                     m.padding, m.dilation, groups=1 if layout == "shared" else k)
            layout = "conv"
        elif isinstance(m, nn.Flatten):
            if layout == "conv":
                h = h.reshape(h.shape[0], k, -1).transpose(0, 1)
                layout = "dense"
            elif layout == "shared":
                h = m(h)
        elif isinstance(m, nn.Dropout):
            h = _dropout(m, h, layout, k)
        else:  # ReLU, Tanh, MaxPool2d act on each cell's channels/features alike
            h = m(h)
    return h


def _dropout(m: nn.Dropout, h: Tensor, layout: str, k: int) -> Tensor:
    if not m.training or m.p == 0:
        return h
    if layout == "shared":
        return m(h)
    shape = (h.shape[0], h.shape[1] // k) + tuple(h.shape[2:]) if layout == "conv" else h.shape[1:]
    mask = nn.functional.dropout(h.new_ones(shape), m.p, training=True)  # the one-cell draw
    if layout == "conv":
        return (h.view(h.shape[0], k, *shape[1:]) * mask.unsqueeze(1)).view(h.shape)
    return h * mask


def _stack_params(model: nn.Module, k: int) -> dict[str, Tensor]:
    return {name: p.detach().unsqueeze(0).repeat((k,) + (1,) * p.dim()).requires_grad_()
            for name, p in model.named_parameters()}


def train_cells(model_name: str, kind: str, cells: list[CellHParams], data: Data, *,
                epochs: int, batch_size: int = 128, seed: int = 1, rule: str = "additive",
                momentum: float = 0.9, weight_decay: float = 1e-4,
                device: torch.device | str = "cpu", second_order: str = "derived") -> list[dict]:
    """Train every cell for `epochs`; return one dict per cell with the final epoch's mean
    training loss, the validation loss and test error (validation = test set, as in train()),
    the divergence flag and step, and the final α and β. A diverged cell is recorded as
    train() records a diverged run: iterations = the step it diverged at, NaN for the final
    numbers, and α after its last finite step in ``last_finite_alpha``."""
    device = torch.device(device)
    k = len(cells)
    torch.manual_seed(seed)
    model = models.build(model_name).to(device)
    params = _stack_params(model, k)
    opt = BatchedHD(list(params.values()), kind, [c.lr for c in cells],
                    [c.hypergrad_lr for c in cells], [c.hyper_hypergrad_lr for c in cells],
                    rule=rule, momentum=momentum, weight_decay=weight_decay,
                    second_order=second_order)

    losses_of = _losses_function(model, k)
    if data.val is not None:   # its curves and test error are both read off one split
        raise ValueError("batched cells evaluate on the test set; a held-out validation split "
                         "(DataConfig.validation > 0) runs one cell at a time (batch=0)")
    train_split, test_split = data.train.to(device), data.test.to(device)
    gen = torch.Generator().manual_seed(seed)
    diverged_at = torch.zeros(k, dtype=torch.int64, device=device)
    last_alpha = torch.full_like(opt.lr, float("nan"))  # α after each cell's last finite step
    it, t0 = 0, time.perf_counter()
    with flushed_denormals(device):   # as train() runs (.floats)
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
                alive = diverged_at == 0
                first = ~torch.isfinite(losses) & alive
                last_alpha = torch.where(alive & ~first, opt.lr, last_alpha)
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
                    "final_alpha": nan if bad else float(opt.lr[i]),
                    "final_beta": nan if bad else float(opt.hypergrad_lr[i]),
                    "last_finite_alpha": float(last_alpha[i]),
                    "iterations": int(diverged_at[i]) if bad else it, "seconds": seconds,
                    "cells_in_batch": k})
    return out


def _losses_function(model: nn.Module, k: int):
    """(params, x, y) -> the K cells' mean cross-entropies on one minibatch."""
    if stackable(model):
        def losses(p, x, y):
            out = stacked_forward(model, p, x)
            ce = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.repeat(k),
                                             reduction="none")
            return ce.view(k, -1).mean(1)
        return losses

    def loss_of(p, x, y):
        return nn.functional.cross_entropy(functional_call(model, p, (x,)), y)
    return vmap(loss_of, in_dims=(0, None, None), randomness="same")


def _outputs_function(model: nn.Module):
    if stackable(model):
        return lambda p, x: stacked_forward(model, p, x)
    return vmap(lambda p, x: functional_call(model, p, (x,)), in_dims=(0, None))


@torch.no_grad()
def _evaluate(model: nn.Module, params: dict[str, Tensor], split, batch_size: int = 1000):
    """(mean cross-entropy, accuracy) per cell over a split, in eval mode (dropout off)."""
    model.eval()
    out_of = _outputs_function(model)
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

