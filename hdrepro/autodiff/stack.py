r"""Hyperoptimizer stacks of any height, with hypergradients by reverse-mode autodiff.

``HyperStack(model.parameters(), [Adam(lr=1e-3), SGD(lr=1e-5)])`` is Chandra et al.'s
``Adam(optimizer=SGD(1e-5))``: level 0 (the primary) updates the model, level k updates the
learned hyperparameters of level k-1, the top level's hyperparameters are constants.

How the hypergradient is obtained, with no model wrapper and no ``create_graph`` in user code.
Each level's update is recorded with autograd as the one-step map
``new = update(old.detach(), grad.detach(), state, hyper)`` from its learned hyperparameters
(leaf tensors) to its outputs. After the user's ordinary ``loss.backward()`` the parameters hold
g_t = ∂f(θ_{t-1})/∂θ_{t-1}, and by the chain rule split at θ_{t-1}

    ∂f(θ_{t-1})/∂α_{t-1} = VJP(θ_{t-1} = update₀(…, α_{t-1}),  g_t)

so ``step()`` back-propagates g_t through the stored graph of level 0 into α (that is h_t), then
h_t through the stored graph of level 1 into β, and so on up: the same one-step truncated
reverse-mode derivative as Chandra et al.'s, at any height, with no special case per height. Then
the levels update top-down, each using the freshly updated hyperparameters of the level above
(β_t before α_t before θ_t). Each stored graph is consumed (freed) by the next step's VJP, so
memory does not grow with training length.

Speed: the hypergradient's cost is the backward pass through the recorded update, so the graph
is kept short. A primary whose update is elementwise (``Level.elementwise``: Adam, AdaGrad,
RMSProp, SGD without clipping) gets the model's parameters, gradients and state as one flat
vector, one op per equation instead of one per tensor; a clipping SGD, which takes a norm per
tensor, gets them tensor by tensor.

The multiplicative rule (``SGD(rule="multiplicative")`` above the primary) needs
‖∂θ_{t-1}/∂α_{t-1}‖; the stack gets it from the recorded update by forward-mode autodiff
(``torch.func.jvp``) when, and only when, the level above asks for it.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer

from ..optim import views
from ..optim.kernels import check_dtypes
from ..optim.scheduling import check_schedulers
from .levels import Level


class HyperStack(Optimizer):
    """A stack of levels used as a torch optimizer: ``zero_grad()``, ``backward()``, ``step()``.

    Args:
        params: the model's parameters (leaf tensors).
        levels: ``[primary, secondary, …]``; every level but the top must learn at least one
            hyperparameter (its ``learn``), the top level's ``learn`` is ignored.

    A torch.optim.Optimizer with one parameter group, ``param_groups[0]``, which holds the
    primary's hyperparameters as numbers (``lr`` is α_t). Writing one sets that hyperparameter,
    and the level above goes on learning it from the new value, so learning-rate schedulers act
    as on ``HD(...)``: one that scales lr scales α_t; one that sets it outright replaces α_t
    (and warns at the next step). Step hooks, ``state_dict`` in torch's two-key form, deepcopy and
    pickling work; ``add_param_group`` is refused, since the stack learns one set of
    hyperparameters for all its parameters. ``hyperparameters()`` lists every level's values.
    """

    def __init__(self, params: Iterable[Tensor], levels: Sequence[Level]):
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("HyperStack got an empty parameter list")
        if any(not isinstance(p, Tensor) or not p.is_leaf for p in self.params):
            raise TypeError("HyperStack params must be leaf tensors (e.g. model.parameters())")
        check_dtypes(self.params)
        if len({id(p) for p in self.params}) < len(self.params):
            # it would be stepped once per appearance, its update counted twice in the graph
            raise ValueError("HyperStack got a parameter more than once; pass each once "
                             "(e.g. list(dict.fromkeys(params)))")
        levels = list(levels)
        if not levels or not all(isinstance(lv, Level) for lv in levels):
            raise TypeError("levels must be a non-empty list of hdrepro.autodiff levels "
                            "(SGD, Adam, AdaGrad, RMSProp)")
        for k, lv in enumerate(levels[:-1]):
            if not lv.learn:
                raise ValueError(f"level {k} ({lv!r}) learns nothing, so level {k + 1} has "
                                 "nothing to update; give it learn=('lr',) or drop the levels above")
        if getattr(levels[0], "rule", "additive") == "multiplicative":
            raise ValueError("the multiplicative rule updates a hyperparameter of the level below; "
                             "the primary (level 0) has none: use it on level 1 or above")
        self.levels = levels
        p0 = self.params[0]
        # An elementwise primary sees the model as one flat vector: one op per equation instead
        # of one per parameter tensor (the same numbers elementwise; a far shorter graph).
        self._flat = getattr(levels[0], "elementwise", False) and all(
            p.dtype == p0.dtype and p.device == p0.device for p in self.params)
        self.learned = [lv.learn for lv in levels[:-1]] + [()]
        # stored forms (Level.store): what the level above learns
        # A half-precision model is stepped in float32: its levels' state, hyperparameters and
        # arithmetic (in bfloat16 β₂ = 0.999 is 1.0 and a β·h step is far below α's rounding
        # step), and only the new parameters are rounded to the model's dtype.
        self._dtype = torch.float32 if p0.dtype in (torch.bfloat16, torch.float16) else p0.dtype
        self.hyper = [{n: torch.tensor(v, dtype=self._dtype, device=p0.device)
                       .requires_grad_(n in self.learned[k]) for n, v in lv.stored().items()}
                      for k, lv in enumerate(levels)]
        self.states = [lv.init_state(self._level_params(k)) for k, lv in enumerate(levels)]
        self._records: list = [None] * len(levels)   # stored one-step graphs (or Jacobians)
        self._sens: list = [None] * len(levels)      # ‖∂outputs/∂h‖ for the multiplicative rule
        self.steps = 0
        self.last_hypergrads: list[list[Tensor]] = []  # ∂f/∂h of each level's learned h, per step
        views.init_view(self, dict(levels[0].hyper))   # param_groups: a view of level 0
        self.state: dict = {}
        self._group = LearnedGroup(self)

    # -- what each level updates -------------------------------------------------------------
    def _level_params(self, k: int) -> list[Tensor]:
        if k == 0:
            return self._model_view([p.detach() for p in self.params])
        return [self.hyper[k - 1][n].detach() for n in self.learned[k - 1]]

    def _model_view(self, tensors: list[Tensor]) -> list[Tensor]:
        """Per-parameter tensors as level 0 sees them: as they are, or one flat vector (in
        float32 for a half-precision model)."""
        tensors = [t.to(self._dtype) for t in tensors]
        return [torch.cat([t.reshape(-1) for t in tensors])] if self._flat else tensors

    def _write_params(self, new: list[Tensor]) -> None:
        if self._flat:
            new = torch.split(new[0], [p.numel() for p in self.params])
        for p, v in zip(self.params, new):
            p.copy_(v.view_as(p))

    def _wants_sens(self, k: int) -> bool:
        above = self.levels[k + 1] if k + 1 < len(self.levels) else None
        return getattr(above, "rule", "additive") == "multiplicative"

    # -- the torch.optim-like surface -------------------------------------------------------
    @property
    def param_groups(self) -> list[dict]:
        self._group.refresh()
        return [self._group]

    @param_groups.setter
    def param_groups(self, groups) -> None:
        raise TypeError("HyperStack's param_groups is a view of its primary level; set a "
                        "hyperparameter through param_groups[0][name] = value")

    def add_param_group(self, param_group: dict) -> None:
        raise ValueError("HyperStack learns one set of hyperparameters for all its parameters, so "
                         "it takes no further parameter group; build the stack with every "
                         "parameter, or use one stack per group")

    def set_hyperparameter(self, name: str, value) -> None:
        """Set the primary's hyperparameter `name` (α_t for "lr") to `value`; a level above that
        learns it goes on from there. The pending one-step graph keeps the old value as its
        input, so the next hypergradient is still ∂f(θ_t)/∂α at the α that made θ_t."""
        level = self.levels[0]
        if name not in level.hyper:
            raise KeyError(f"{name!r} is not a hyperparameter of {level!r}; it has "
                           f"{sorted(level.hyper)}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"Invalid {name}: {value} is not finite")
        old = self.hyper[0][name]
        stored = torch.tensor(level.stored_value(name, value), dtype=old.dtype, device=old.device)
        self.hyper[0][name] = stored.requires_grad_(name in self.learned[0])

    def __getstate__(self):
        # torch.optim.Optimizer pickles only defaults, state and param_groups; a stack needs all
        # of itself, with each pending one-step graph as its Jacobian (a graph cannot be copied)
        state = views.picklable(self)
        state["_records"] = [None if r is None else ("jacobian", self._record_columns(k))
                             for k, r in enumerate(self._records)]
        for key in ("states", "_sens", "last_hypergrads"):
            state[key] = _detached_copy(state[key])
        group = state.pop("_group")
        state["_group_extras"] = {k: v for k, v in group.items()
                                  if k != "params" and k not in self.levels[0].hyper}
        return state

    def __setstate__(self, state):
        extras = state.pop("_group_extras", {})
        views.restore(self, state)
        self._group = LearnedGroup(self)
        dict.update(self._group, extras)

    def hyperparameters(self) -> dict[str, float]:
        """Every level's current hyperparameters as used (not as stored): {"0.lr": α_t, "1.lr":
        β_t, …}."""
        return {f"{k}.{n}": float(v.detach()) for k, lv in enumerate(self.levels)
                for n, v in lv.values(self.hyper[k]).items()}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        check_schedulers(self)   # a scheduler that would undo the learned α warns
        grads = self._model_view([torch.zeros_like(p) if p.grad is None else p.grad.detach()
                                  for p in self.params])
        hgrads, norms_below = self._hypergradients(grads)
        self.last_hypergrads = hgrads
        for k in reversed(range(len(self.levels))):
            below_grads = grads if k == 0 else hgrads[k - 1]
            scale = self._scale(k, norms_below) if k > 0 else None
            new = self._update_level(k, below_grads, scale)
            if k == 0:
                self._write_params(new)
            else:
                for n, v in zip(self.learned[k - 1], new):
                    self.hyper[k - 1][n] = v.detach().requires_grad_(True)
        self.steps += 1
        return loss

    # -- the two passes ------------------------------------------------------------------------
    def _hypergradients(self, grads: list[Tensor]):
        """Bottom-up VJPs: hgrads[k] = ∂f/∂(learned hyperparameters of level k)."""
        hgrads, norms_below, below = [], [], grads
        for k in range(len(self.levels) - 1):
            inputs = [self.hyper[k][n] for n in self.learned[k]]
            rec = self._records[k]
            if rec is None:  # first step: nothing has moved yet, so ∂f/∂h = 0
                hk = [torch.zeros_like(x) for x in inputs]
            elif rec[0] == "graph":   # rec[2]: the hyperparameters the graph was recorded from
                with torch.enable_grad():
                    hk = torch.autograd.grad(rec[1], rec[2], grad_outputs=below,
                                             allow_unused=True)
                hk = [torch.zeros_like(x) if h is None else h for x, h in zip(inputs, hk)]
            else:  # restored from a state_dict: the same linear map, as Jacobian columns
                hk = [sum((gi * ji).sum() for gi, ji in zip(below, col)) for col in rec[1]]
            self._records[k] = None  # frees the graph
            # ‖g‖ of level k's outputs, needed only by a multiplicative level above
            norms_below.append(_norm(below) if self._wants_sens(k) else None)
            hgrads.append([h.detach() for h in hk])
            below = hgrads[-1]
        return hgrads, norms_below

    def _scale(self, k: int, norms_below: list[Tensor]):
        """1/(‖g‖ ‖∂θ/∂h‖) per learned hyperparameter of level k-1 (multiplicative rule)."""
        if getattr(self.levels[k], "rule", "additive") != "multiplicative":
            return None
        sens = self._sens[k - 1]
        if sens is None:
            return [torch.zeros_like(self.hyper[k - 1][n]) for n in self.learned[k - 1]]
        out = []
        for s in sens:
            denom = norms_below[k - 1] * s
            out.append(torch.where(denom > 0, 1 / torch.where(denom > 0, denom, 1.0), 0.0))
        return out

    def _update_level(self, k: int, grads: list[Tensor], scale) -> list[Tensor]:
        """Level k's update, recorded as a graph into its learned hyperparameters if any."""
        level, params, state = self.levels[k], self._level_params(k), self.states[k]
        if self.learned[k]:
            with torch.enable_grad():
                hyper = level.values(self.hyper[k])
                new, self.states[k] = level.update(params, grads, state, hyper, scale)
            self._records[k] = ("graph", new, [self.hyper[k][n] for n in self.learned[k]])
            if self._wants_sens(k):
                self._sens[k] = self._sensitivities(k, params, grads, state, scale)
        else:
            new, self.states[k] = level.update(params, grads, state, level.values(self.hyper[k]),
                                               scale)
        return new

    def _sensitivities(self, k, params, grads, state, scale) -> list[Tensor]:
        """‖∂ update_k / ∂h‖ for each learned h of level k, by forward-mode autodiff."""
        fixed = {n: v.detach() for n, v in self.hyper[k].items()}
        out = []
        for n in self.learned[k]:
            def f(value, n=n):
                used = self.levels[k].values({**fixed, n: value})
                return tuple(self.levels[k].update(params, grads, state, used, scale)[0])
            _, tangents = torch.func.jvp(f, (fixed[n],), (torch.ones_like(fixed[n]),))
            out.append(_norm(tangents))
        return out

    # -- checkpointing ------------------------------------------------------------------------
    def _jacobians(self, k: int) -> list[list[Tensor]]:
        """Columns ∂outputs/∂h of level k's pending graph (double-backward trick), graph kept."""
        outputs, inputs = self._records[k][1], self._records[k][2]
        cols = []
        with torch.enable_grad():
            for x in inputs:
                w = [torch.zeros_like(o, requires_grad=True) for o in outputs]
                (vjp,) = torch.autograd.grad(outputs, [x], grad_outputs=w,
                                             create_graph=True, retain_graph=True)
                cols.append([c.detach() for c in torch.autograd.grad(vjp, w, allow_unused=True)])
        return cols

    def _record_columns(self, k: int):
        rec = self._records[k]
        return None if rec is None else self._jacobians(k) if rec[0] == "graph" else rec[1]

    def state_dict(self) -> dict:
        """torch's two keys: "state" (every level's hyperparameters, state, pending one-step
        Jacobians and step count) and "param_groups" (the primary's values, parameter indices)."""
        records = [self._record_columns(k) for k in range(len(self.levels))]
        state = {"hyper": [{n: v.detach().clone() for n, v in h.items()} for h in self.hyper],
                 # plain dicts, so that torch.load(weights_only=True) reads a saved stack
                 "states": [_detached_copy(st._asdict()) for st in self.states],
                 "records": records,
                 "sens": _detached_copy(self._sens), "steps": self.steps}
        group = {n: float(v) for n, v in self.levels[0].values(state["hyper"][0]).items()}
        return {"state": state,
                "param_groups": [{**group, "params": list(range(len(self.params)))}]}

    def load_state_dict(self, sd: dict) -> None:
        """Load a state_dict of :meth:`state_dict` (or of the earlier one-level form)."""
        sd = sd["state"] if "state" in sd else sd
        if len(sd["hyper"]) != len(self.levels):
            raise ValueError(f"state_dict has {len(sd['hyper'])} levels, this stack "
                             f"{len(self.levels)}")
        self.hyper = [{n: v.clone().requires_grad_(n in self.learned[k]) for n, v in h.items()}
                      for k, h in enumerate(sd["hyper"])]
        self.states = [lv.state_from(s) for lv, s in zip(self.levels, _detached_copy(sd["states"]))]
        self._records = [None if r is None else ("jacobian", r) for r in sd["records"]]
        self._sens = _detached_copy(sd["sens"])
        self.steps = sd["steps"]

    def __repr__(self):
        return "HyperStack(" + " / ".join(repr(lv) for lv in self.levels) + ")"


def _norm(tensors) -> Tensor:
    """‖(t_1, …, t_n)‖: the 2-norm of a list of tensors taken as one vector."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


def _detached_copy(obj):
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _detached_copy(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):   # a level's typed state
        return type(obj)(*(_detached_copy(v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_detached_copy(v) for v in obj)
    return obj


class LearnedGroup(dict):
    """``param_groups[0]`` of a stack: its parameters and the primary's hyperparameters as
    numbers, refreshed on each read. Writing a hyperparameter sets it in the stack
    (:meth:`HyperStack.set_hyperparameter`); other keys, such as a scheduler's "initial_lr", are
    kept as in a torch param group."""

    def __init__(self, stack: HyperStack):
        super().__init__(params=stack.params)
        self._stack = stack

    def refresh(self) -> None:
        used = self._stack.levels[0].values(self._stack.hyper[0])
        for n, v in used.items():
            dict.__setitem__(self, n, float(v.detach()))

    def __setitem__(self, key, value):
        if key == "params":
            raise TypeError("HyperStack's parameters are fixed when it is built")
        if key in self._stack.levels[0].hyper:
            self._stack.set_hyperparameter(key, value)
            value = float(value)
        dict.__setitem__(self, key, value)
