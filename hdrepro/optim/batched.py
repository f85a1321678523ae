r"""K independent HD optimizers at once, one per grid cell, on parameters stacked along a leading
cell axis: what lets :mod:`hdrepro.studies.grids` train many cells of one model in one pass.

Cell k runs exactly the equations of :class:`~hdrepro.optim.SGDHD` (kind "sgd": d_t = g_t;
"sgdn": Nesterov, b_t = μ b_{t-1} + g_t, d_t = g_t + μ b_t) or :class:`~hdrepro.optim.AdamHD`
(kind "adam": d_t = m̂_t / (√v̂_t + ε)), see their docstrings, with its own α_k, β_k, γ_k and state:

.. math::
    g_t &= ∇f(θ_{t-1}) + λ θ_{t-1}                                      \\
    h_{t,k} &= -Σ_{\text{params, axes}>0} g_{t,k} · d_{t-1,k}   \quad (d_0 = 0)  \\
    α_{t,k}, β_{t,k} &= \text{update\_lr}(h_{t,k})   \quad\text{(additive, multiplicative, 2nd order)} \\
    θ_{t,k} &= θ_{t-1,k} - α_{t,k} d_{t,k}

Every tensor carries the cell axis first; h and the norms are reduced per cell; the α/β rule is
:func:`hdrepro.optim._hypergrad.update_lr` itself (it is elementwise, so a vector of α works).
β_k = 0 gives cell k the plain optimizer, which is how a grid's baseline row shares a batch with
its HD cells. A cell whose numbers become NaN/inf keeps them to itself: no operation mixes cells.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from . import _hypergrad as hg

KINDS = ("sgd", "sgdn", "adam")


class BatchedHD:
    """SGD-HD / SGDN-HD / Adam-HD for K cells whose parameters are stacked on axis 0.

    Args:
        params: tensors of shape (K, ...), each with ``.grad`` after backward.
        kind: "sgd", "sgdn" (Nesterov momentum μ) or "adam".
        lr, hypergrad_lr: α₀ and β per cell (sequences of length K, each >= 0).
        hyper_hypergrad_lr: γ per cell (sequence) or one number for all; 0 = first-order HD.
        rule: "additive" or "multiplicative" (one rule per batch).
        second_order: "derived" or "printed", β's update when γ > 0 (one per batch).
        momentum, weight_decay, betas, eps: as SGDHD/AdamHD (coupled weight decay).
    """

    def __init__(self, params: Sequence[Tensor], kind: str, lr, hypergrad_lr,
                 hyper_hypergrad_lr=0.0, rule: str = "additive", momentum: float = 0.9,
                 weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8,
                 second_order: str = "derived"):
        if kind not in KINDS:
            raise ValueError(f"Invalid kind: {kind!r}; choose one of {KINDS}")
        self.params = list(params)
        if not self.params:
            raise ValueError("BatchedHD needs at least one parameter tensor")
        k = len(lr)
        if k == 0 or len(hypergrad_lr) != k:
            raise ValueError(f"lr and hypergrad_lr need one value per cell (got {len(lr)} and "
                             f"{len(hypergrad_lr)})")
        bad = [tuple(p.shape) for p in self.params if p.dim() == 0 or p.shape[0] != k]
        if bad:
            raise ValueError(f"every parameter must have the cell axis first, of size {k}; "
                             f"got shapes {bad}")
        gammas = hyper_hypergrad_lr if isinstance(hyper_hypergrad_lr, Sequence) else [
            hyper_hypergrad_lr] * k
        for a, b, c in zip(lr, hypergrad_lr, gammas):
            hg.check_hd_args(a, b, rule, c, second_order)
        hg.check_finite_nonneg("momentum", momentum)
        hg.check_finite_nonneg("weight_decay", weight_decay)
        hg.check_finite_nonneg("epsilon (eps)", eps)
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Invalid betas: {betas} (need two numbers in [0, 1))")
        like = self.params[0]
        vec = lambda xs: torch.tensor(list(xs), dtype=like.dtype, device=like.device)  # noqa: E731
        self.group = {"lr": vec(lr), "hypergrad_lr": vec(hypergrad_lr), "rule": rule,
                      "second_order": second_order,
                      "hyper_hypergrad_lr": vec(gammas) if any(gammas) else 0.0,
                      "hd_dalpha_dbeta": torch.zeros(k, dtype=like.dtype, device=like.device),
                      "hd_nonfinite": torch.zeros(k, dtype=torch.int64, device=like.device),
                      "hd_h": torch.zeros(k, dtype=like.dtype, device=like.device)}
        self.kind, self.momentum, self.weight_decay = kind, momentum, weight_decay
        self.betas, self.eps = tuple(betas), eps
        self.t = 0                  # steps taken (all cells step together)
        self.direction = None       # d_{t-1} per parameter, (K, ...)
        self.state: list[dict] = [{} for _ in self.params]

    @property
    def lr(self) -> Tensor:
        """α_t per cell."""
        return self.group["lr"]

    @property
    def hypergrad_lr(self) -> Tensor:
        """β_t per cell."""
        return self.group["hypergrad_lr"]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        g = [p.grad.add(p, alpha=self.weight_decay) if self.weight_decay else p.grad
             for p in self.params]
        h, norms = self._hypergradient(g)
        alpha = hg.update_lr(self.group, h, *norms)
        self.t += 1
        d = self._direction(g)
        for p, di in zip(self.params, d):
            p.addcmul_(_per_cell(alpha, di), di, value=-1)
        self.direction = d

    def _hypergradient(self, g: list[Tensor]) -> tuple[Tensor, tuple]:
        """h_t = -g_t · d_{t-1} per cell (and ‖g_t‖, ‖d_{t-1}‖ for the multiplicative rule)."""
        if self.direction is None:  # d_0 = 0
            h = self.params[0].new_zeros(self.params[0].shape[0])
        else:
            h = -sum(_cell_dot(gi, di) for gi, di in zip(g, self.direction))
        if self.group["rule"] != "multiplicative":
            return h, ()  # the additive rule needs no norms: no extra passes over memory
        d_norm = torch.zeros_like(h) if self.direction is None else _cell_norm(self.direction)
        return h, (_cell_norm(g), d_norm)

    def _direction(self, g: list[Tensor]) -> list[Tensor]:
        """d_t of the base optimizer (momentum / moment buffers updated in place)."""
        if self.kind == "sgd":
            return list(g)  # never written in place (zero_grad drops the old .grad)
        if self.kind == "sgdn":
            mu, d = self.momentum, []
            for st, gi in zip(self.state, g):
                b = st.get("momentum_buffer")
                b = gi.clone() if b is None else b.mul_(mu).add_(gi)
                st["momentum_buffer"] = b
                d.append(gi + mu * b)
            return d
        beta1, beta2 = self.betas
        bc1, bc2 = 1 - beta1 ** self.t, 1 - beta2 ** self.t
        d = []
        for st, gi in zip(self.state, g):
            m = st.setdefault("exp_avg", torch.zeros_like(gi)).lerp_(gi, 1 - beta1)
            v = st.setdefault("exp_avg_sq", torch.zeros_like(gi))
            v.mul_(beta2).addcmul_(gi, gi, value=1 - beta2)
            d.append((m / bc1) / ((v.sqrt() / math.sqrt(bc2)).add_(self.eps)))
        return d


def _per_cell(x: Tensor, like: Tensor) -> Tensor:
    """A (K,) vector shaped to broadcast over a (K, ...) tensor."""
    return x.reshape((-1,) + (1,) * (like.dim() - 1))


def _cell_dot(x: Tensor, y: Tensor) -> Tensor:
    """⟨x_k, y_k⟩ per cell, as one batched matrix product (no temporary of x's size)."""
    k = x.shape[0]
    return torch.bmm(x.reshape(k, 1, -1), y.reshape(k, -1, 1)).reshape(k)


def _cell_norm(xs: Sequence[Tensor]) -> Tensor:
    return torch.sqrt(sum(_cell_dot(x, x) for x in xs))
