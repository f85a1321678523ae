r"""MARTHE (Donini et al., IJCAI 2020): SGD whose learning rate follows a hypergradient that looks
back along the whole trajectory, discounted by μ. μ = 1 is RTHO, the real-time hypergradient of
Franceschi et al. (ICML 2017); μ = 0 is SGD-HD (Baydin et al., 2018).

For each step t, with g_t = ∇L_t(θ_{t-1}) + λθ_{t-1} on the training batch and
H_t = ∇²L_t(θ_{t-1}) + λI (λ = weight_decay, coupled L2 as in SGD-HD):

.. math::
    h_t &= ∇E(θ_{t-1}) · Z_{t-1}                       \quad (Z_0 = 0)                  \\
    α_t &= α_{t-1} - β h_t                                                             \\
    θ_t &= θ_{t-1} - α_t g_t                                                            \\
    Z_t &= μ\,(Z_{t-1} - α_t H_t Z_{t-1}) - g_t

E is the training loss of the same batch (E = L_t, then ∇E(θ_{t-1}) = g_t), or a validation loss
given by ``hyper_closure``. Z_t is the tangent ∂θ_t/∂α of the trajectory: with μ = 1 it is the
exact derivative of θ_t with respect to a shift of every α_s, s ≤ t, so h_{t+1} is the derivative
of E(θ_t) through all t steps (tests/test_marthe.py checks it against reverse-mode autodiff
through the unrolled steps). With μ = 0, Z_t = -g_t = ∇_α u_t and h_t = -g_t·g_{t-1}: SGD-HD.
H_t Z_{t-1} is one Hessian-vector product by double backward, so a step costs about two
gradient evaluations.

Automatic μ (``mu="auto"``, the rule of the MARTHE authors' code): after step t, with
p_t = ∇E(θ_{t-1}) · g_{t-1} (how well the last training step served E),

.. math::
    q_t = \min(\max(α_t / p_t, 0), 1),\quad c_t = c_{t-1}\,\mathrm{sign}(μ_{t-1}) + μ_{t-1},\quad
    μ_t = q_t^{1/(c_t + 1)}

starting from μ_0 = 0, c_0 = 0 (the horizon grows while the steps keep serving E and collapses
to SGD-HD's when they stop).
"""
from __future__ import annotations

import math

import torch
from torch.optim import Optimizer
from torch.optim.sgd import sgd as torch_sgd

from . import _hypergrad as hg


class MARTHE(Optimizer):
    r"""SGD with its learning rate learned by MARTHE; see the module docstring for the equations.

    Args:
        params: the parameters (one group: H_t couples every parameter, so α is shared).
        lr: α₀ (>= 0).
        hypergrad_lr: β (>= 0).
        mu: μ in [0, 1], or "auto" for the rule above. 0 is SGD-HD, 1 is RTHO.
        weight_decay: λ (>= 0), part of the training objective: in g_t and in H_t.

    ``step(closure, hyper_closure=None)``: ``closure()`` returns the training loss of the batch
    *without* calling backward (the step differentiates it twice); ``hyper_closure()``, if given,
    returns the loss E whose hypergradient steers α, a validation batch's for instance, at the
    current parameters. α_t is in ``param_groups[0]["lr"]``, h_t in ``["hd_h"]``, μ_t in
    ``["mu"]`` when automatic.
    """

    def __init__(self, params, lr=1e-3, hypergrad_lr=1e-6, mu=0.5, weight_decay=0.0):
        hg.check_hd_args(lr, hypergrad_lr, "additive", 0.0)
        hg.check_finite_nonneg("weight_decay", weight_decay)
        if mu != "auto":
            hg.check_finite_nonneg("mu", mu)
            if mu > 1:
                raise ValueError(f"Invalid mu: {mu} (must be in [0, 1], or \"auto\")")
        defaults = dict(lr=lr, hypergrad_lr=hypergrad_lr, mu=mu, rule="additive",
                        hyper_hypergrad_lr=0.0, weight_decay=weight_decay)
        super().__init__(params, defaults)

    def add_param_group(self, param_group):
        if getattr(self, "param_groups", None):
            raise ValueError("MARTHE takes one parameter group: the Hessian H_t couples every "
                             "parameter, so they share one α")
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        hg.init_group(group)
        group["hd_auto_mu"] = group["mu"] == "auto"
        if group["hd_auto_mu"]:
            group["mu"], group["hd_c"] = 0.0, 0.0

    def step(self, closure, hyper_closure=None):
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.requires_grad]
        state = self.state["tangent"] if "tangent" in self.state else None
        mu, wd = group["mu"], group["weight_decay"]
        with torch.enable_grad():
            loss = closure()
            grads = torch.autograd.grad(loss, params, create_graph=mu > 0 and state is not None)
        raw = [x.detach() for x in grads]
        with torch.no_grad():
            g = hg.grads_with_decay(params, raw, wd)
        e_grad = g if hyper_closure is None else self._grad_of(hyper_closure, params)
        zero = torch.zeros((), dtype=hg.state_dtype(params), device=params[0].device)
        h = zero if state is None else hg.dot(e_grad, state).to(zero)
        alpha = hg.update_lr(group, h)
        if group["hd_auto_mu"] and "last_grad" in self.state:
            self._auto_mu(group, alpha, hg.dot(e_grad, self.state["last_grad"]))
        self.state["tangent"] = self._tangent(grads, g, params, state, alpha, mu, wd)
        self.state["last_grad"] = g
        with torch.no_grad():   # the very call SGD-HD makes, so that μ = 0 is it bit for bit
            kernel = hg.kernel(params, "sgd")
            fused = kernel == "fused"
            torch_sgd(params, raw, [None] * len(params), fused=fused,
                      foreach=kernel == "foreach", lr=alpha if fused else float(alpha),
                      weight_decay=wd, momentum=0.0, dampening=0.0, nesterov=False,
                      maximize=False)
        return loss.detach()

    def state_dict(self) -> dict:
        """torch's form, as a snapshot with plain numbers in param_groups (as SGDHD's)."""
        return hg.snapshot(super().state_dict())

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        hg.init_group(self.param_groups[0])   # α_t, h_t, … back as tensors

    @staticmethod
    def _grad_of(hyper_closure, params):
        with torch.enable_grad():
            return [x.detach() for x in torch.autograd.grad(hyper_closure(), params)]

    @staticmethod
    def _tangent(grads, g, params, old, alpha, mu, wd):
        """Z_t = μ (Z_{t-1} - α_t H_t Z_{t-1}) - g_t, with H_t Z_{t-1} by double backward (plus
        λ Z_{t-1}, the weight decay's share of H_t)."""
        if old is None or mu == 0:
            return [-x for x in g]
        hz = torch.autograd.grad(grads, params, grad_outputs=old)
        return [(mu * (z - alpha * (hzi + wd * z)) - gi).detach()
                for z, hzi, gi in zip(old, hz, g)]

    @staticmethod
    def _auto_mu(group, alpha, grad_product):
        group["mu"], group["hd_c"] = auto_mu(group["mu"], group["hd_c"], float(alpha),
                                             float(grad_product))


def auto_mu(mu: float, c: float, alpha: float, grad_product: float) -> tuple[float, float]:
    """One step of the automatic μ rule: (μ_t, c_t) from μ_{t-1}, c_{t-1}, α_t and
    p_t = ∇E(θ_{t-1})·g_{t-1} (module docstring)."""
    q = alpha / grad_product if grad_product != 0 else math.inf
    q = min(max(q, 0.0), 1.0) if not math.isnan(q) else 0.0
    c = c * (1.0 if mu > 0 else 0.0) + mu
    return q ** (1.0 / (c + 1.0)), c
