"""Straightforward per-parameter HD optimizers in the style of Baydin et al.'s public code.

For the benchmark only: a Python loop over parameter tensors, a `.item()` host read per tensor,
the learning rate bumped tensor by tensor (as docs/setups.md describes the reference
AdamHD). Not used by the library; correctness is not the point, cost is.
"""
import math

import torch
from torch.optim import Optimizer


class LoopSGDHD(Optimizer):
    def __init__(self, params, lr, momentum=0.0, nesterov=False, hypergrad_lr=1e-6):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov,
                                      hypergrad_lr=hypergrad_lr))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            mu = group["momentum"]
            for p in group["params"]:
                g = p.grad
                state = self.state[p]
                if "d" in state:
                    h = torch.dot(g.reshape(-1), state["d"].reshape(-1)).item()
                    group["lr"] += group["hypergrad_lr"] * h
                d = g
                if mu:
                    buf = state.get("buf")
                    buf = g.clone() if buf is None else buf.mul_(mu).add_(g)
                    state["buf"] = buf
                    d = g + mu * buf if group["nesterov"] else buf
                state["d"] = d.clone()
                p.add_(d, alpha=-group["lr"])


class LoopAdamHD(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, hypergrad_lr=1e-8):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, hypergrad_lr=hypergrad_lr))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                g = p.grad
                state = self.state[p]
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                m, v = state["m"], state["v"]
                if state["step"] > 0:
                    t = state["step"]
                    d = m / (v.sqrt() + group["eps"])
                    h = torch.dot(g.reshape(-1), d.reshape(-1)).item()
                    group["lr"] += group["hypergrad_lr"] * h * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                state["step"] += 1
                t = state["step"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                step = group["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                p.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-step)
