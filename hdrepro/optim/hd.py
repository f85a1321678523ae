r"""HD(optimizer): hypergradient learning-rate adaptation for any torch.optim optimizer whose step
is linear in its learning rate."""
from __future__ import annotations

import copy

import torch
from torch.optim import Optimizer

from . import _hypergrad as hg
from . import adam_directions as ad
from . import flat, native
from . import views
from .scheduling import check_schedulers

#: torch.optim optimizers whose parameter update is α·(something independent of α), so that
#: ∇_α u_{t-1} = Δθ_{t-1} / α_{t-1}. (ASGD, Rprop and LBFGS are not: their lr enters nonlinearly.)
LINEAR_IN_LR = tuple(getattr(torch.optim, n) for n in (
    "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"))


class HD(Optimizer):
    r"""Wrap a torch.optim optimizer so that its learning rate is learned by hypergradient descent.

    For a base optimizer whose update is u_t = Δθ_t = -α_t d_t with d_t independent of α_t:

    .. math::
        ∇_α u_{t-1} &= Δθ_{t-1} / α_{t-1} = -d_{t-1}                                  \\
        h_t &= g_t · ∇_α u_{t-1},\quad g_t = ∇f(θ_{t-1}) \;(+ λθ_{t-1}\text{ for coupled L2}) \\
        α_t &= α_{t-1} - β h_t \quad\text{(or the multiplicative / second-order rules)}

    then the base optimizer steps with lr = α_t. Wrapping torch.optim.SGD or Adam gives SGDHD or
    AdamHD (tests check it). Coupled weight decay (``weight_decay`` of SGD, Adam, RMSprop, …) is
    part of the objective, so λθ enters g_t; decoupled decay (AdamW, ``decoupled_weight_decay``)
    is not.

    ``param_groups`` is the wrapped optimizer's, with α_t in ``["lr"]`` and β_t in
    ``["hypergrad_lr"]``. α_t stays a 0-d tensor with no host synchronisation when the base
    optimizer takes a tensor lr (``fused=True`` or ``capturable=True``); otherwise one
    ``float(α)`` per group and step is read. d_{t-1} is recovered as -Δθ_{t-1}/α_{t-1}: after a
    step with α exactly 0 the direction is unknown and h is 0, so HD(…) cannot leave α = 0; SGDHD
    and AdamHD, which know d directly, can. Around torch's Adam and AdamW on CPU, d_{t-1} is read
    from the moments instead, as AdamHD does (:mod:`.adam_directions`): nothing is stored, and
    the step makes one reduction pass before Adam's own. With the parameters laid in one buffer
    (:func:`.flatten_`), off CPU, the same is done on the flat tensors (:mod:`.flat`).

    HD is a torch.optim.Optimizer over the wrapped optimizer's own ``param_groups`` (the same
    list, not a copy): ``add_param_group``, step hooks and learning-rate schedulers work on it. A
    scheduler that scales the current lr (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR,
    their chainable forms) scales the learned α_t, and HD goes on from there; one that sets lr
    outright (LambdaLR, OneCycleLR) replaces α_t with its value whenever it steps, and warns at the
    next step after it is built (:mod:`hdrepro.optim.scheduling`).
    """

    def __init__(self, optimizer: Optimizer, hypergrad_lr: float, rule: str = "additive",
                 hyper_hypergrad_lr: float = 0.0, second_order: str = "derived"):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"HD wraps a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not isinstance(optimizer, LINEAR_IN_LR):
            names = ", ".join(c.__name__ for c in LINEAR_IN_LR)
            raise ValueError(f"HD needs an optimizer whose step is linear in lr; "
                             f"{type(optimizer).__name__} is not one of: {names}")
        for group in optimizer.param_groups:
            if group.get("maximize"):  # h_t would then drive α the wrong way, and α diverge
                raise ValueError(f"HD does not support maximize=True in "
                                 f"{type(optimizer).__name__}: minimise the negated objective")
            hg.check_hd_args(group["lr"], hypergrad_lr, rule, hyper_hypergrad_lr, second_order)
        self.optimizer = optimizer
        self._hd_settings = dict(hypergrad_lr=hypergrad_lr, rule=rule,
                                 hyper_hypergrad_lr=hyper_hypergrad_lr, second_order=second_order)
        for group in optimizer.param_groups:
            self._adopt(group)
        views.init_view(self, {**optimizer.defaults, **self._hd_settings})
        self.state: dict = {}   # d_{t-1} per parameter

    @property
    def param_groups(self) -> list[dict]:
        # the wrapped optimizer's list, read each time: its load_state_dict replaces the list
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, groups: list[dict]) -> None:
        self.optimizer.param_groups = groups

    def __getstate__(self):
        # torch.optim.Optimizer pickles only defaults, state and param_groups; HD also needs the
        # wrapped optimizer (deepcopy keeps the two sharing one param_groups list)
        return views.picklable(self)

    def __setstate__(self, state):
        views.restore(self, state)

    def _adopt(self, group: dict) -> None:
        """Give a group of the wrapped optimizer HD's settings and state."""
        group.update(self._hd_settings)
        hg.init_group(group)
        hg.check_epsilon(group)

    def add_param_group(self, param_group: dict) -> None:
        """Add the group to the wrapped optimizer (its defaults fill the group), then HD's; a
        group HD refuses is taken back out, so that neither optimizer keeps it. An option that
        neither knows is refused (torch.optim would ignore it)."""
        unknown = sorted(set(param_group) - set(self.defaults) - {"params", "param_names"})
        if unknown:
            raise ValueError(f"HD({type(self.optimizer).__name__}) does not know the param-group "
                             f"option(s) {', '.join(map(repr, unknown))}; known: "
                             f"{', '.join(sorted(self.defaults))}")
        self.optimizer.add_param_group(param_group)
        group = self.optimizer.param_groups[-1]
        try:
            if group.get("maximize"):
                raise ValueError("HD does not support maximize=True: minimise the negated "
                                 "objective")
            hg.check_hd_args(group["lr"], **self._hd_settings)
            self._adopt(group)
        except (ValueError, TypeError):
            self.optimizer.param_groups.pop()
            raise

    def zero_grad(self, set_to_none: bool = True):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def _coupled_decay(self, group) -> float:
        decoupled = isinstance(self.optimizer, torch.optim.AdamW) or group.get(
            "decoupled_weight_decay", False)
        return 0.0 if decoupled else group.get("weight_decay", 0.0)

    def _tensor_lr_ok(self, group) -> bool:
        return bool(group.get("fused") or group.get("capturable"))

    @torch.no_grad()
    def step(self, closure=None):
        loss = hg.evaluate_closure(closure)
        if not torch.compiler.is_compiling():
            check_schedulers(self)   # a scheduler that would undo HD warns
        if self._one_buffer_step():
            return loss
        stepped = []  # (group, params, θ_{t-1} copies, α_t) per group that steps
        for group in self.param_groups:
            params, grads = hg.params_with_grads(group)
            if not params:
                continue
            if self._reads_moments(group, params):
                alpha = ad.update_lr(group, self.optimizer.state, params, grads,
                                     shared=self._shared_step(params))
                stepped.append((group, [], [], alpha))
                group["lr"] = alpha if self._tensor_lr_ok(group) else float(alpha)
                continue
            g = hg.grads_with_decay(params, grads, self._coupled_decay(group))
            have = [i for i, p in enumerate(params) if p in self.state]
            d_prev = [self.state[params[i]] for i in have]
            h = -hg.dot([g[i] for i in have], d_prev).to(params[0].device,
                                                         hg.state_dtype(params))
            norms = (hg.norm(g), hg.norm(d_prev)) if group["rule"] == "multiplicative" else ()
            alpha = hg.update_lr(group, h, *norms)
            stepped.append((group, params, self._copy_params(params), alpha))
            group["lr"] = alpha if self._tensor_lr_ok(group) else float(alpha)
        try:
            self.optimizer.step()
        finally:
            for group, _, _, alpha in stepped:
                group["lr"] = alpha
        for _, params, old, alpha in stepped:
            if not params:   # a group whose directions are Adam's moments
                continue
            torch._foreach_sub_(old, params)  # now -Δθ_t = α_t d_t
            inv = torch.where(alpha != 0, 1 / torch.where(alpha != 0, alpha, 1.0), 0.0)
            torch._foreach_mul_(old, inv)     # d_t
            for p, d in zip(params, old):
                self.state[p] = d
        return loss

    def _one_buffer_step(self) -> bool:
        """Around torch's Adam or AdamW, every group that steps laid out in one buffer
        (:mod:`.flat`): h_t from the moments and Adam's own update, both on the flat tensors, as
        AdamHD steps them. False, with nothing stepped, unless every such group can: the wrapped
        optimizer's step() makes every group's update at once."""
        if type(self.optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
            return False
        plans = []
        for group in self.param_groups:
            if group["params"] and flat.as_flat(group["params"]) is None:
                return False   # not laid out (found at the second tensor): the usual case
            params, grads = hg.params_with_grads(group)
            if not params:
                continue
            if (group.get("capturable") or group.get("differentiable")
                    or not self._moments_readable(group)):
                return False
            kernel = "fused" if group.get("fused") else "foreach"
            plan = flat.adam_plan(self.optimizer, group, params, grads, kernel)
            if plan is None:
                return False
            plans.append((group, params, kernel, plan))
        for group, params, kernel, plan in plans:
            flat.adam_run(self.optimizer, group, params, kernel, plan)
            if self.state:   # d_{t-1} lives in the moments now, not a copy
                for p in params:
                    self.state.pop(p, None)
        return bool(plans)

    def _reads_moments(self, group, params) -> bool:
        """Whether d_{t-1} is read from Adam's moments (:mod:`.adam_directions`) rather than
        kept as -Δθ_{t-1}/α_{t-1}: for torch's Adam and AdamW on CPU where the kernels of
        :mod:`.native` are built, which saves the copy of θ and three passes over memory. (On a
        GPU the stored direction stays: its step reads nothing back to the host, which a shared
        step count would need. So does a torch that does not name the decay's kind in the
        group, or betas given as tensors.)"""
        return (params[0].device.type == "cpu" and native.kernels() is not None
                and self._moments_readable(group))

    def _moments_readable(self, group) -> bool:
        """Whether d_{t-1} can be had from the wrapped optimizer's moments: torch's Adam or
        AdamW, in a torch that names the decay's kind in the group, with betas as numbers."""
        return (type(self.optimizer) in (torch.optim.Adam, torch.optim.AdamW)
                and "decoupled_weight_decay" in group
                and all(isinstance(b, (int, float)) for b in group["betas"]))

    def _shared_step(self, params) -> bool:
        steps = {float(s["step"]) for s in (self.optimizer.state[p] for p in params) if s}
        return len(steps) <= 1

    def _copy_params(self, params: list) -> list:
        """θ_{t-1}, copied into the buffers that held d_{t-1} (h_t no longer needs them), so
        that a step allocates nothing after the first."""
        bufs = [self.state.get(p) for p in params]
        dtype = hg.state_dtype(params)   # d_t = -Δθ_t/α_t: a bfloat16 Δθ is exact, its ratio not
        bufs = [torch.empty_like(p, dtype=dtype) if b is None else b for p, b in zip(params, bufs)]
        torch._foreach_copy_(bufs, params)
        return bufs

    def state_dict(self) -> dict:
        """The wrapped optimizer's state_dict in torch's form, each parameter's state holding
        also d_{t-1} ("hd_direction"); a snapshot, with plain numbers in param_groups."""
        sd = hg.snapshot(self.optimizer.state_dict())
        index = {p: i for i, p in enumerate(
            p for group in self.param_groups for p in group["params"])}
        for p, d in self.state.items():
            sd["state"].setdefault(index[p], {})["hd_direction"] = d.clone()
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        """Load :meth:`state_dict`'s form (or the earlier {"optimizer", "directions"} one)."""
        if "optimizer" in state_dict:
            inner, directions = state_dict["optimizer"], state_dict["directions"]
        else:
            inner = copy.deepcopy(state_dict)
            directions = {i: s.pop("hd_direction") for i, s in inner["state"].items()
                          if "hd_direction" in s}
            inner["state"] = {i: s for i, s in inner["state"].items() if s}
        self.optimizer.load_state_dict(inner)
        for group in self.param_groups:
            hg.init_group(group)   # the HD scalars back as tensors
        params = [p for group in self.param_groups for p in group["params"]]
        self.state = {params[i]: d.to(params[i].device, hg.state_dtype([params[i]]))
                      for i, d in directions.items()}

    def __repr__(self):
        return f"HD({self.optimizer!r})"
