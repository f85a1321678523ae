"""How many GPU kernels an optimizer step launches, beside its wall-clock time.

For each eager step of bench_step.py (torch's fused steps and ours, also on one buffer), on both
parameter sets: the wall-clock time per step (synchronised) and the kernels launched per step,
counted with torch.profiler. Each launch costs the host microseconds whatever the kernel does,
which is what a CUDA graph (hdrepro.optim.CUDAGraphStep) removes; bench_step.py times the
graphed steps.
GPU only; about 30 s.

    python bench/profile_step.py --out results/full
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_cases import ONE_BUFFER_CASES, STEP_CASES  # noqa: E402
from timing import interleaved_medians, make_params, mlnn_shapes, resnet_like_shapes  # noqa: E402
from common import device_name, parser, write_rows  # noqa: E402

from hdrepro.engine.executors import git_commit  # noqa: E402

CASES = {**STEP_CASES, **ONE_BUFFER_CASES}
SHOWN = ["SGDN (fused)", "SGDN-HD (ours)", "SGDN-HD (ours, one buffer)", "Adam (fused)",
         "Adam-HD (ours)", "Adam-HD (ours, one buffer)", "HD(Adam fused) (ours)",
         "HD(Adam fused) (ours, one buffer)", "Adam (foreach)"]
STEPS = 20


def kernels_per_step(step, steps: int) -> float:
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    return sum(e.device_type == DeviceType.CUDA for e in prof.events()) / steps


def main(argv=None):
    ap = parser(__doc__, ["full"], "folder for profile_step_cuda.csv")
    ap.set_defaults(profile="full", out=Path("results/full"))
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type != "cuda":
        raise SystemExit("profile_step.py counts GPU kernels: run it on a machine with "
                         "CUDA (bench_step.py gives the CPU's ratios)")
    rows = []
    for set_name, shapes in (("resnet-like 160 tensors", resnet_like_shapes()),
                             ("MLNN 784-1000-1000-10", mlnn_shapes())):
        for case in SHOWN:
            opt = CASES[case](make_params(shapes, device))
            for _ in range(5):
                opt.step()
            torch.cuda.synchronize()
            n = kernels_per_step(opt.step, STEPS)
            wall = interleaved_medians({case: opt.step}, device, STEPS)[case]
            rows.append({"params": set_name, "step": case, "wall_ms": wall,
                         "kernels_per_step": n})
            print(f"{set_name[:24]:24s} {case:24s} wall {wall:7.3f} ms  {n:5.1f} kernels/step")
    meta = {"device": device_name(device), "torch": torch.__version__,
            "commit": git_commit()}
    for r in rows:
        r.update(meta)
    path = args.out / "profile_step_cuda.csv"
    write_rows(path, rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
