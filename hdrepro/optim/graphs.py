r"""CUDAGraphStep: an optimizer's step() recorded once as a CUDA graph, then replayed.

Why. On a GPU an HD step is a few dozen multi-tensor kernels, each launched from Python. For a
ResNet-sized set of tensors the launches, not the memory traffic, set the step time (the
report's speed page); torch's own fused Adam is bound the same way. A CUDA graph records the step's kernels once
and replays them all with one launch.

Why it is correct for SGDHD, AdamHD and HD(…): their step() reads nothing back to the host, and
every quantity that changes from step to step (α_t, β_t, a_{t-1} = ∂α_{t-1}/∂β, h_t, Adam's step
count t and bias corrections, the moments, d_{t-1}) lives in a tensor whose storage stays put
(:func:`hdrepro.optim._hypergrad.store`). A replay therefore gives the eager step's α and
parameters (tests/test_graphs.py, run on a GPU: float32, 20 steps, ≤ 1e-6 relative).
torch.optim optimizers replay too when torch allows their capture (``capturable=True`` where
they have it).

The training loop keeps to the rules of any CUDA-graph capture:
- gradients stay in the same tensors: zero them with :meth:`zero_grad` (``set_to_none=False``);
  a step that finds a gradient tensor replaced raises instead of reading stale memory;
- the parameters that have gradients are those they were at capture;
- nothing rebinds a group's entries (``lr``, ``hypergrad_lr``) after capture: a scheduler would
  write a new object that the graph never reads. After :meth:`load_state_dict` the step is
  recorded afresh.

The first ``warmup_steps`` steps run eagerly on a side stream (they create the state, and torch
asks for warm-up before capture); the next step is recorded and replayed, and every later one is
replayed.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._hypergrad import HDOptimizer


class CUDAGraphStep:
    """Wrap an optimizer whose parameters are on a CUDA device; ``step()`` replays a CUDA graph.

    Args:
        optimizer: SGDHD, AdamHD, HD(…) or a capturable torch.optim optimizer.
        warmup_steps: eager steps before the step is recorded (>= 1: the first creates the state).
    """

    def __init__(self, optimizer, warmup_steps: int = 3):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"Invalid warmup_steps: {warmup_steps!r} (need an int >= 1: the "
                             "first step creates the optimizer's state)")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if not params or not all(isinstance(p, Tensor) and p.is_cuda for p in params):
            raise ValueError("CUDAGraphStep needs an optimizer whose parameters are on a CUDA "
                             "device; on the CPU call optimizer.step() directly")
        if isinstance(optimizer, HDOptimizer) and any(p.dtype == torch.float64 for p in params):
            raise ValueError("CUDAGraphStep cannot record SGDHD/AdamHD with float64 parameters: "
                             "on CUDA their float64 step reads α to the host (torch's fused "
                             "kernels take lr as float32); use float32 parameters, or step "
                             "eagerly")
        self.optimizer = optimizer
        self.warmup_steps = warmup_steps
        self.params = params
        self.graph: torch.cuda.CUDAGraph | None = None
        self.grads: list[Tensor | None] = []  # each parameter's .grad at capture
        self.eager_steps = 0

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def zero_grad(self) -> None:
        """Zero the gradients in place (their storage is what the graph reads)."""
        self.optimizer.zero_grad(set_to_none=False)

    @torch.no_grad()
    def step(self) -> None:
        if self.graph is not None:
            self._check_grads()
            self.graph.replay()
        elif self.eager_steps < self.warmup_steps:
            self._eager_step()
        else:
            self._capture()
            self.graph.replay()  # capture records the kernels without running them

    def _eager_step(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.optimizer.step()
        torch.cuda.current_stream().wait_stream(side)
        self.eager_steps += 1

    def _capture(self) -> None:
        self.grads = [p.grad for p in self.params]
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.optimizer.step()
        self.graph = graph

    def _check_grads(self) -> None:
        for p, g in zip(self.params, self.grads):
            if p.grad is not g:
                raise RuntimeError(
                    "a parameter's .grad is not the tensor the CUDA graph was recorded with; "
                    "zero gradients with CUDAGraphStep.zero_grad() (set_to_none=False) and do "
                    "not assign .grad")

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        """Load into the wrapped optimizer; its state is new tensors, so record the step again."""
        self.optimizer.load_state_dict(state_dict)
        self.graph, self.grads, self.eager_steps = None, [], 0

    def __repr__(self):
        return f"CUDAGraphStep({self.optimizer!r})"
