"""Grid throughput: cell-steps per second, one cell at a time vs batched cells, on LogReg, MLNN
and BetterCNN, measured side by side in one run on one device.

Claim under test (the project's targets, docs/report/speed.md): batched ≥ 5× one-at-a-time
for LogReg on CPU (overhead-bound);
for MLNN and BetterCNN on CPU the achieved GFLOP/s against the cores' measured matmul peak, and
BetterCNN one cell at a time ≥ 2× as fast as before its CPU work (ReLU after the pool,
channels-last convolutions, each pool and its ReLU as one kernel; timed side by side, alternated
round by round, with a 95% bootstrap interval over the rounds, on all threads and, beyond the
smoke profile, on one thread, as the studies' workers run); on an H100 batched ≥ 20×
one-at-a-time. One-at-a-time is hdrepro.engine.train.train (the grid's batch=0 path);
batched is hdrepro.engine.batched.train_cells with K cells (the grid's batch=K path). Each entry trains
SGD-HD from the same start on the first 6,000 MNIST images (the report's 10%), batch 128, for
`epochs`, timed after a warm-up; FLOPs per cell-step are counted by torch's FlopCounterMode
(forward + backward at batch 128; the optimizer's elementwise work is not counted). The process
keeps large freed blocks for reuse, as the studies' workers do (hdrepro.engine.memory), for every
entry alike.
Runtime: smoke ~30 s, quick ~2.5 min, full ~7 min on 2 CPU cores; ~2 min on an H100.

    python bench/bench_grid.py --profile quick --out results/quick
"""
from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, parser, sync, write_rows  # noqa: E402
from timing import ratio_interval  # noqa: E402

from hdrepro.engine import models  # noqa: E402
from hdrepro.engine.batched import CellHParams, train_cells  # noqa: E402
from hdrepro.cli_help import DATA_HELP, run_main  # noqa: E402
from hdrepro.engine.executors import git_commit  # noqa: E402
from hdrepro.engine.memory import keep_large_blocks  # noqa: E402
from hdrepro.engine.data import DataConfig, default_data_root, load  # noqa: E402
from hdrepro.methods.registry import OptimConfig  # noqa: E402
from hdrepro.engine.train import TrainConfig, train  # noqa: E402

K_VALUES = {  # cells per batch, per device kind and profile
    ("cpu", "smoke"): {"logreg": (1, 16), "mlnn": (1, 4), "bettercnn": (1, 4)},
    ("cpu", "quick"): {"logreg": (1, 16, 128), "mlnn": (1, 8), "bettercnn": (1, 8)},
    ("cpu", "full"): {"logreg": (1, 16, 64, 128), "mlnn": (1, 8, 32), "bettercnn": (1, 8, 32)},
    ("cuda", "smoke"): {m: (1, 16) for m in ("logreg", "mlnn", "bettercnn")},
    ("cuda", "quick"): {m: (1, 16, 64, 256) for m in ("logreg", "mlnn", "bettercnn")},
    ("cuda", "full"): {m: (1, 16, 64, 256) for m in ("logreg", "mlnn", "bettercnn")},
}
EPOCHS = {"smoke": 1, "quick": 1, "full": 2}
#: BetterCNN as now and as before, alternated this many times
ROUNDS = {"smoke": 3, "quick": 5, "full": 10}
FRACTION = {"smoke": 0.02, "quick": 0.1, "full": 0.1}
ALPHA0, BETA = 1e-3, 1e-6   # a converging SGD-HD cell: no run stops early
#: the row of BetterCNN trained as before its CPU work, beside the one-at-a-time row
BEFORE = "one at a time, as before (ReLU then pool, standard layout)"
ONE_THREAD = ", 1 thread"   # the suffix of BetterCNN's rows timed on one thread



def flops_per_cell_step(model_name: str, batch: int = 128) -> float:
    model = models.build(model_name)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return float(counter.get_total_flops())


def matmul_peak_gflops(device, n: int) -> float:
    """Measured fp32 matmul throughput (TF32 off): the reference 'peak' for GFLOP/s ratios."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    sync(device)
    seconds = []
    for _ in range(10 if device.type == "cuda" else 5):   # the median: the CPU's speed drifts
        t0 = time.perf_counter()
        a @ b
        sync(device)
        seconds.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(seconds) / 1e9


def time_one_at_a_time(model, data, data_cfg, epochs, device, rounds: int = 1
                       ) -> tuple[float, int]:
    """Seconds of one cell trained by train() (the median of `rounds` runs after a warm-up),
    and its iterations."""
    cfg = TrainConfig(model, data_cfg, OptimConfig("sgd-hd", ALPHA0, BETA), epochs,
                      device=str(device), log_every=10 ** 9, progress=False)
    train(cfg, data)  # warm-up
    seconds = []
    for _ in range(rounds):
        sync(device)
        t0 = time.perf_counter()
        res = train(cfg, data)
        sync(device)
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), res.final["iterations"]


class PapersOrderCNN(torch.nn.Sequential):
    """BetterCNN as it ran before its CPU work: each ReLU before its pool, every tensor in
    the standard layout (the same training to float rounding: tests/test_models.py)."""

    def __init__(self):
        n = torch.nn
        super().__init__(n.Conv2d(1, 30, 5), n.ReLU(), n.MaxPool2d(2), n.Conv2d(30, 15, 3),
                         n.ReLU(), n.MaxPool2d(2), n.Dropout(0.2), n.Flatten(),
                         n.Linear(375, 128), n.ReLU(), n.Linear(128, 50), n.ReLU(),
                         n.Linear(50, 10))


@contextlib.contextmanager
def bettercnn_as_before():
    """Train BetterCNN as before (PapersOrderCNN, no channels-last) inside the block."""
    saved = models.MODELS["bettercnn"], models.prepare
    models.MODELS["bettercnn"], models.prepare = PapersOrderCNN, lambda model, device: model
    try:
        yield
    finally:
        models.MODELS["bettercnn"], models.prepare = saved


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op threads set to `n` inside the block."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def time_before_and_now(model, data, data_cfg, epochs, device, rounds: int) -> dict:
    """BetterCNN one cell at a time as before and as now, alternated `rounds` times so that
    drift in the machine's speed falls on both: the median seconds of each, the iterations,
    and a 95% bootstrap interval on the speed-up (median before / median now), resampling
    whole rounds."""
    times = {"before": [], "now": []}
    for _ in range(rounds):
        with bettercnn_as_before():
            times["before"].append(time_one_at_a_time(model, data, data_cfg, epochs, device)[0])
        seconds, iters = time_one_at_a_time(model, data, data_cfg, epochs, device)
        times["now"].append(seconds)
    lo, hi = ratio_interval(times, "before", "now")
    return {"before": statistics.median(times["before"]), "now": statistics.median(times["now"]),
            "iterations": iters, "speedup_lo": lo, "speedup_hi": hi, "rounds": rounds}


def layout_rows(model, timing: dict, flops: float, peak: float, suffix: str = "") -> list[dict]:
    """The rows of BetterCNN as now and as before from time_before_and_now, with their GFLOP/s
    and fraction of `peak` (measured on as many threads)."""
    rows = []
    for mode, seconds in (("one at a time (train)" + suffix, timing["now"]),
                          (BEFORE + suffix, timing["before"])):
        speed = timing["iterations"] / seconds
        rows.append({"model": model, "mode": mode, "cells": 1, "cell_steps_per_s": speed,
                     "speedup": timing["now"] / seconds, "gflops": speed * flops / 1e9,
                     "fraction_of_peak": speed * flops / 1e9 / peak,
                     "threads": torch.get_num_threads(), "matmul_peak_gflops": peak,
                     **{k: timing[k] for k in ("speedup_lo", "speedup_hi", "rounds")}})
    return rows


def one_thread_rows(model, data, data_cfg, epochs, device, flops, rounds: int) -> list[dict]:
    """BetterCNN one at a time as now and as before on one thread, as each worker of the
    studies runs it (``--threads 1``), against the one-thread matmul peak."""
    with torch_threads(1):
        peak = matmul_peak_gflops(device, 2048)
        timing = time_before_and_now(model, data, data_cfg, epochs, device, rounds)
        return layout_rows(model, timing, flops, peak, ONE_THREAD)


def time_batched(model, data, epochs, device, k) -> tuple[float, int]:
    cells = [CellHParams(ALPHA0, BETA)] * k
    train_cells(model, "sgd", cells, data, epochs=1, device=device)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    out = train_cells(model, "sgd", cells, data, epochs=epochs, device=device)
    sync(device)
    return time.perf_counter() - t0, out[0]["iterations"]



def main(argv=None):
    ap = parser(__doc__, EPOCHS)
    ap.add_argument("--data", type=Path, default=None, help=DATA_HELP)
    args = ap.parse_args(argv)
    keep_large_blocks()
    device = torch.device(args.device)
    data_cfg = DataConfig("mnist", FRACTION[args.profile])
    data = load(data_cfg, args.data or default_data_root())
    epochs = EPOCHS[args.profile]
    peak = matmul_peak_gflops(device, 8192 if device.type == "cuda" else 2048)
    meta = {"device": device_name(device), "torch": torch.__version__, "profile": args.profile,
            "n_train": len(data.train), "epochs": epochs, "matmul_peak_gflops": peak,
            "commit": git_commit()}
    rows = []
    for model, ks in K_VALUES[device.type, args.profile].items():
        flops = flops_per_cell_step(model)
        if model == "bettercnn" and device.type == "cpu":
            ours = layout_rows(model, time_before_and_now(model, data, data_cfg, epochs, device,
                                                          ROUNDS[args.profile]), flops, peak)
            one = ours[0]["cell_steps_per_s"]
        else:
            seconds, iters = time_one_at_a_time(model, data, data_cfg, epochs, device, rounds=3)
            one = iters / seconds
            ours = [{"model": model, "mode": "one at a time (train)", "cells": 1,
                     "cell_steps_per_s": one, "speedup": 1.0}]
        for k in ks:
            seconds, iters = time_batched(model, data, epochs, device, k)
            ours.append({"model": model, "mode": f"batched K={k}", "cells": k,
                         "cell_steps_per_s": k * iters / seconds,
                         "speedup": k * iters / seconds / one})
        for r in ours:
            if "gflops" not in r:
                r["gflops"] = r["cell_steps_per_s"] * flops / 1e9
                r["fraction_of_peak"] = r["gflops"] / peak
                r["threads"] = torch.get_num_threads()
        if (model == "bettercnn" and device.type == "cpu" and torch.get_num_threads() > 1
                and args.profile != "smoke"):
            ours += one_thread_rows(model, data, data_cfg, epochs, device, flops,
                                    ROUNDS[args.profile])
        for r in ours:
            r["flops_per_cell_step"] = flops
            r.update({key: value for key, value in meta.items() if key not in r})
            print(f"{model:10s} {r['mode']:22s} {r['cell_steps_per_s']:10.0f} cell-steps/s "
                  f"{r['speedup']:6.1f}x  {r['gflops']:8.1f} GFLOP/s "
                  f"({100 * r['fraction_of_peak']:.0f}% of matmul peak)", flush=True)
        rows += ours
    path = args.out / f"bench_grid_{device.type}.csv"
    write_rows(path, rows)
    print(f"wrote {path} ({meta['device']}, matmul peak {peak:.0f} GFLOP/s)")


if __name__ == "__main__":
    run_main(main)
