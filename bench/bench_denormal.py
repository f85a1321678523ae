"""Cost of subnormal floats in an optimizer step on CPU, and what flushing them saves.

A unit whose gradient stays 0 (a dead ReLU) has Adam moments that decay into the subnormal range
and stay there (β₁ times the smallest subnormal rounds back to it); training runs therefore flush
subnormals to zero on CPU (hdrepro.engine.floats). This times one step of torch's Adam and of our
Adam-HD on the MLNN's parameters (784-1000-1000-10) with a share of their moment entries
subnormal and those entries' gradients 0, with flushing off and on, round-robin in one run.
Reported: time off / time on (a ratio of medians with a 95% bootstrap interval over rounds); the
share 0 is the control, where flushing should change nothing.
Runtime: smoke ~5 s, quick ~30 s, full ~1.5 min on 2 CPU cores.

    python bench/bench_denormal.py --profile full --out results/full
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, parser, write_rows  # noqa: E402
from timing import REPEATS, interleaved_times, mlnn_shapes, ratio_interval  # noqa: E402

from hdrepro.cli_help import run_main  # noqa: E402
from hdrepro.engine.executors import git_commit  # noqa: E402
from hdrepro.methods.registry import OptimConfig, make_optimizer  # noqa: E402

SHARES = (0.0, 0.01, 0.1, 1.0)
# without weight decay, so that nothing moves a dead unit's moments out of the subnormal range
# during the timing (with it, g = λθ on a weight near 0 moves them in and out)
OPTIMIZERS = {"Adam": OptimConfig("adam", 1e-3, weight_decay=0.0),
              "Adam-HD": OptimConfig("adam-hd", 1e-3, 1e-7, weight_decay=0.0)}
SUBNORMAL = 1e-40


def stepper(cfg: OptimConfig, share: float, flush: bool):
    """One step of `cfg` on MLNN-shaped parameters whose moments are subnormal on the first
    `share` of each tensor's entries (gradient 0 there), with flushing set as asked."""
    torch.set_flush_denormal(False)   # else the subnormals written below are flushed already
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen) * 0.01) for s in mlnn_shapes()]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 0.01
        p.grad.view(-1)[: int(share * p.numel())] = 0.0   # a dead unit's
    opt = make_optimizer(cfg, params, total_steps=10**6)
    opt.step()   # creates the moments
    for p in params:
        for key in ("exp_avg", "exp_avg_sq"):
            opt.state[p][key].view(-1)[: int(share * p.numel())] = SUBNORMAL

    def step():
        torch.set_flush_denormal(flush)
        opt.step()
    return step


def main(argv=None) -> None:
    ap = parser(__doc__, REPEATS)
    ap.set_defaults(device="cpu")   # a CPU mode, whatever devices the machine has
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type != "cpu":
        ap.error(f"--device {args.device}: subnormal flushing is a CPU mode; run with --device cpu")
    repeats, rows = REPEATS[args.profile], []
    try:
        for name, cfg in OPTIMIZERS.items():
            for share in SHARES:
                fns = {flush: stepper(cfg, share, flush) for flush in (False, True)}
                times = interleaved_times(fns, device, repeats)
                low, high = ratio_interval(times, False, True)
                off, on = (1e3 * statistics.median(times[f]) for f in (False, True))
                rows.append({"device": device_name(device), "optimizer": name,
                             "subnormal_share": share, "ms_flush_off": round(off, 3),
                             "ms_flush_on": round(on, 3), "ratio": round(off / on, 3),
                             "ratio_low": round(low, 3), "ratio_high": round(high, 3),
                             "repeats": repeats, "commit": git_commit()})
                print(f"{name:8s} share {share:<5g} off {off:7.2f} ms  on {on:7.2f} ms  "
                      f"off/on {off / on:.2f} [{low:.2f}, {high:.2f}]", flush=True)
    finally:
        torch.set_flush_denormal(False)
    path = args.out / "bench_denormal_cpu.csv"
    write_rows(path, rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    run_main(main)
