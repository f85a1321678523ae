"""HD optimizers in your own training loop: every optimizer, in float32, bfloat16 and float16,
under torch's learning-rate schedulers, checked against what the README says α_t does.

    python examples/own_loop.py          (needs only torch and an installed hdrepro)

For each optimizer, dtype and scheduler it trains a 20-64-2 MLP for 40 full-batch steps twice,
with HD on and with β = 0 (the schedule alone), and checks:
  - no scheduler: α_t moves, and in half precision its change is within 10% of float32's
    (float16 Adam in AdamHD and HD(AdamW) excepted: there v underflows, in torch.optim.Adam too,
    so the run itself departs from float32's, and α only has to move the same way);
  - StepLR and a LinearLR warm-up (scale the lr): HD's α differs from the schedule's at every
    step, so HD keeps learning under them;
  - LambdaLR and OneCycleLR (set the lr): they warn at the optimizer's next step, and right
    after each of their steps α_t is the schedule's value.
It prints one row per run and exits 1 if any check fails.
"""
from __future__ import annotations

import sys
import warnings

import torch
from torch import nn
from torch.optim import lr_scheduler

from hdrepro.autodiff import SGD, Adam, HyperStack
from hdrepro.optim import HD, SGDHD, AdamHD

STEPS = 40
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# ε = 1e-4: Adam's default 1e-8 is 0 in float16 (torch's Adam too); the optimizers warn about it
OPTIMIZERS = {
    "SGDHD": lambda ps, b: SGDHD(ps, lr=1e-2, momentum=0.9, nesterov=True, hypergrad_lr=b),
    "AdamHD": lambda ps, b: AdamHD(ps, lr=1e-3, eps=1e-4, hypergrad_lr=b),
    "HD(AdamW)": lambda ps, b: HD(torch.optim.AdamW(ps, lr=1e-3, eps=1e-4), hypergrad_lr=b),
    "HyperStack": lambda ps, b: HyperStack(ps, [Adam(1e-3, eps=1e-4), SGD(b)]),
}
BETA = {"SGDHD": 1e-3, "AdamHD": 1e-7, "HD(AdamW)": 1e-7, "HyperStack": 1e-7}
SCHEDULERS = {
    "none": None,
    "StepLR": lambda o: lr_scheduler.StepLR(o, step_size=10, gamma=0.5),
    "warm-up (LinearLR)": lambda o: lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10),
    "LambdaLR": lambda o: lr_scheduler.LambdaLR(o, lambda t: 1.0 / (1 + 0.1 * t)),
    "OneCycleLR": lambda o: lr_scheduler.OneCycleLR(o, max_lr=o.param_groups[0]["lr"] * 2,
                                                    total_steps=STEPS, cycle_momentum=False),
}
SETS_LR = ("LambdaLR", "OneCycleLR")


def train(name: str, dtype, sched: str, beta: float):
    """(α after each step, α right after each scheduler step, loss, warned) of one run."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 2)).to(dtype)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(256, 20, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long()
    opt = OPTIMIZERS[name](list(model.parameters()), beta)
    alphas, scheduled = [], []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        scheduler = SCHEDULERS[sched](opt) if SCHEDULERS[sched] else None
        for _ in range(STEPS):
            loss = nn.functional.cross_entropy(model(x.to(dtype)).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            alphas.append(float(opt.param_groups[0]["lr"]))
            if scheduler is not None:
                scheduler.step()
                scheduled.append(float(opt.param_groups[0]["lr"]))
    warned = any("outright" in str(w.message) for w in seen)
    return alphas, scheduled, float(loss.detach()), warned


def check(name: str, dtype, sched: str, reference: dict) -> tuple[bool, str]:
    alphas, scheduled, loss, warned = train(name, dtype, sched, BETA[name])
    start = OPTIMIZERS[name]([nn.Parameter(torch.zeros(1))], 0.0).defaults["lr"]
    if sched == "none":
        reference.setdefault(name, alphas[-1])   # float32 runs first
        change, change32 = alphas[-1] - start, reference[name] - start
        ok = change != 0 and abs(change - change32) <= 0.10 * abs(change32)
        if dtype == torch.float16 and name in ("AdamHD", "HD(AdamW)"):
            ok = change * change32 > 0
        return ok, f"α {start:.3g} → {alphas[-1]:.5g} (float32 {reference[name]:.5g})"
    plain, plain_scheduled, _, _ = train(name, dtype, sched, 0.0)
    if sched in SETS_LR:
        ok = warned and scheduled == plain_scheduled
        return ok, f"warned {warned}; α = schedule after each of its steps: {ok}"
    differs = sum(a != b for a, b in zip(alphas[1:], plain[1:]))
    ok = not warned and differs == STEPS - 1
    return ok, f"HD's α differs from the schedule's on {differs} of {STEPS - 1} steps"


def main() -> int:
    failures, reference = 0, {}
    for dtype in DTYPES:
        for name in OPTIMIZERS:
            for sched in SCHEDULERS:
                ok, note = check(name, dtype, sched, reference)
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name:10} {str(dtype)[6:]:9} {sched:18} {note}")
    print(f"{failures} failed" if failures else "all as documented")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
