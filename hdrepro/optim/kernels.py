r"""Which of torch's fused optimizer kernels the HD optimizers use, per device and dtype, and the
measurement that decides it.

The fast paths of SGDHD and AdamHD hand α_t to torch's fused kernels as a 0-d tensor, which
saves a host read per step. A fused kernel is used only where it was measured to step like
torch's single-tensor kernel, the reference (:func:`measure`; ``bench/fused_kernels.py`` prints
the whole table for the installed torch, tests/test_kernels.py checks every entry in use). With
torch 2.13:

- on CPU in bfloat16 and float16, fused SGD moves the parameters by about 0.5% of the reference
  step (a move ratio of 0.005), so it is not used. Fused Adam is right there, but torch.optim's *default* CPU path (one tensor at a
  time) is taken instead, so that ``hypergrad_lr=0`` is exactly torch's default step;
- on CUDA in float64 the fused kernels read a tensor lr as float32, and raise;
- on CUDA in half precision they are not verified here, so the multi-tensor path is taken.

A (device, dtype, kernel) missing from :data:`FUSED` takes torch's default non-fused path.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

HALF_DTYPES = (torch.bfloat16, torch.float16)
#: Parameter dtypes the HD optimizers and stacks accept. In bfloat16 and float16 the HD state
#: (α, β, h_t, ∂α/∂β) is kept wider: a β·h_t update is far below bfloat16's rounding step of α.
SUPPORTED_DTYPES = (torch.float32, torch.float64, *HALF_DTYPES)

def check_dtypes(params, one_dtype: bool = False) -> None:
    """Refuse parameters in a dtype the HD optimizers do not support, naming the way out; with
    `one_dtype`, also a group that mixes dtypes (it has one α and one kernel)."""
    bad = sorted({str(p.dtype).replace("torch.", "") for p in params
                  if p.dtype not in SUPPORTED_DTYPES})
    if bad:
        raise ValueError(f"HD optimizers take real floating-point parameters (float32, float64, "
                         f"bfloat16, float16), not {bad[0]}: for complex parameters optimise "
                         "torch.view_as_real(p) as a real parameter")
    kinds = sorted({str(p.dtype).replace("torch.", "") for p in params})
    if one_dtype and len(kinds) > 1:
        raise ValueError(f"a parameter group mixes dtypes ({', '.join(kinds)}); put each dtype "
                         "in a parameter group of its own, since each group has one α")


#: (device type, parameter dtype, kernel) -> whether the HD fast path uses torch's fused kernel
FUSED = {
    ("cpu", torch.float32, "sgd"): True, ("cpu", torch.float32, "adam"): True,
    ("cpu", torch.float64, "sgd"): True, ("cpu", torch.float64, "adam"): True,
    ("cpu", torch.bfloat16, "sgd"): False, ("cpu", torch.bfloat16, "adam"): False,
    ("cpu", torch.float16, "sgd"): False, ("cpu", torch.float16, "adam"): False,
    ("cuda", torch.float32, "sgd"): True, ("cuda", torch.float32, "adam"): True,
    ("cuda", torch.float64, "sgd"): False, ("cuda", torch.float64, "adam"): False,
}

#: the optimizer settings each kernel is measured with (momentum and Nesterov exercise the most
#: of SGD's kernel; a large ε keeps float16 Adam finite)
SETTINGS = {"sgd": (torch.optim.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True)),
            "adam": (torch.optim.Adam, dict(lr=1e-3, eps=1e-4))}


@dataclass(frozen=True)
class KernelCheck:
    """How a fused kernel stepped against the single-tensor kernel, over the same gradients.

    move_ratio: mean |θ_T − θ_0| of the fused run over that of the reference (1 when right);
    max_diff: max |θ_fused − θ_ref| over mean |θ_T − θ_0| of the reference.
    """
    device: str
    dtype: torch.dtype
    kernel: str
    move_ratio: float
    max_diff: float

    @property
    def right(self) -> bool:
        """The same step size; and in float32/float64 the same parameters to a few roundings
        (in half precision one rounding of θ is already a sizeable part of a step)."""
        same_size = abs(self.move_ratio - 1) < 0.05
        return same_size and (self.dtype in HALF_DTYPES or self.max_diff < 1e-3)


def measure(device: str, dtype: torch.dtype, kernel: str, steps: int = 20) -> KernelCheck:
    """Run torch's fused and single-tensor `kernel` ("sgd" or "adam") side by side for `steps`
    steps on the same random gradients, in `dtype` on `device`."""
    cls, kwargs = SETTINGS[kernel]
    gen = torch.Generator().manual_seed(0)
    shapes = [(37, 13), (5,), (64, 3, 3)]
    start = [torch.randn(s, generator=gen).to(device, dtype) for s in shapes]
    grads = [[torch.randn(s, generator=gen).to(device, dtype) for s in shapes]
             for _ in range(steps)]
    runs = {}
    for fused in (True, False):
        params = [p.clone().requires_grad_() for p in start]
        opt = cls(params, **kwargs, **(dict(fused=True) if fused else dict(foreach=False)))
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            opt.step()
        runs[fused] = [p.detach().double() for p in params]
    move = {f: sum((p - s.double()).abs().sum() for p, s in zip(runs[f], start)).item()
            for f in runs}
    size = sum(s.numel() for s in start)
    diff = max((a - b).abs().max().item() for a, b in zip(runs[True], runs[False]))
    return KernelCheck(device, dtype, kernel, move[True] / move[False],
                       diff / (move[False] / size))
