"""What HD(...) and HyperStack share as torch.optim.Optimizer subclasses whose param_groups are a
view of groups held elsewhere (the wrapped optimizer's, a stack's primary level), so that
torch.optim.Optimizer.__init__, which would copy the groups into a list of its own, is not run."""
from __future__ import annotations

from collections import OrderedDict

from torch.optim import Optimizer

HOOKS = ("step_pre", "step_post", "state_dict_pre", "state_dict_post", "load_state_dict_pre",
         "load_state_dict_post")


def init_view(opt: Optimizer, defaults: dict) -> None:
    """Set what Optimizer.__init__ sets, except param_groups: defaults, hook registries, and
    the step wrapper that runs the step hooks."""
    opt.defaults = defaults
    _fresh_hooks(opt)
    opt._patch_step_function()


def picklable(opt: Optimizer) -> dict:
    """The object's state for deepcopy and pickle, without its hooks (as torch.optim drops them:
    a hook is often a lambda, which cannot be pickled)."""
    return {k: v for k, v in opt.__dict__.items()
            if not (k.startswith("_optimizer_") and k.endswith("_hooks"))}


def restore(opt: Optimizer, state: dict) -> None:
    opt.__dict__.update(state)
    _fresh_hooks(opt)


def _fresh_hooks(opt: Optimizer) -> None:
    for hooks in HOOKS:
        setattr(opt, f"_optimizer_{hooks}_hooks", OrderedDict())
