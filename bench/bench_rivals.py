"""Cost per training iteration of HD, ASGC, HDM, MARTHE and the learning-rate-free rivals against
torch's Adam, measured side by side on one device, and the optimizer state each keeps per
parameter (MARTHE's Hessian-vector product also keeps the backward graph alive for a second
pass, which this count of state does not include).

Every optimizer is built by hdrepro.methods.registry.make_optimizer (the code path the experiments use) and
times one MLNN iteration (784-1000-1000-10, batch 128: forward, backward, step), round-robin so
that drift in the machine's speed affects every entry alike. Ratios of medians, this run only,
with a 95% bootstrap interval that resamples whole rounds.
Runtime: smoke ~5 s, quick ~30 s, full ~1 min on 2 CPU cores.

    python bench/bench_rivals.py --profile quick --out results/quick
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import REPEATS, interleaved_times, ratio_interval  # noqa: E402
import statistics  # noqa: E402
from common import device_name, parser, write_rows  # noqa: E402

from hdrepro.methods import rivals  # noqa: E402
from hdrepro.cli_help import run_main  # noqa: E402
from hdrepro.engine.executors import git_commit  # noqa: E402
from hdrepro.engine.models import build  # noqa: E402
from hdrepro.studies.rivals import TITLES, method_config  # noqa: E402
from hdrepro.methods.registry import OptimConfig, make_optimizer  # noqa: E402
from hdrepro.engine.train import train_step  # noqa: E402

BASELINE = "adam"
EXTRA = {"asgc-momentum": ("ASGC (momentum)", OptimConfig("asgc-momentum", 0.01)),
         "momentum": ("SGD momentum", OptimConfig("momentum", 0.01)),
         "hdm": ("HDM (diagonal P, learned β)", OptimConfig("hdm", 1e-3, 0.1)),
         "marthe": ("MARTHE (μ = 0.9)", OptimConfig("marthe", 0.01, 1e-4,
                                                     options=(("mu", 0.9),)))}


def cases() -> dict[str, tuple[str, OptimConfig]]:
    out = {m: (TITLES[m], method_config(m)) for m in ("adam", "adam-hd", "sgdn-hd")}
    out.update(EXTRA)
    for r in rivals.RIVALS:
        if rivals.available(r):
            for s in rivals.SETTINGS:
                out[f"{r}:{s}"] = (TITLES[f"{r}:{s}"], method_config(f"{r}:{s}"))
        else:
            print(f"{r} not installed: its rows are skipped (pip install -e '.[rivals]')")
    return out


def iteration(device, cfg: OptimConfig, batch: int = 128):
    torch.manual_seed(0)
    model = build("mlnn").to(device)
    x = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = make_optimizer(cfg, model.parameters(), total_steps=1000, model=model)

    def it():   # as the training loop steps (MARTHE on a closure)
        train_step(opt, model, x, y)
    return it, opt, model


def state_floats(opt, model) -> float:
    """Floats of optimizer state per parameter: the optimizer's state tensors, those it keeps in
    its groups, a wrapper's own and an averaged model's (scalars left out)."""
    n = sum(p.numel() for p in model.parameters())
    inner = getattr(opt, "optimizer", opt)
    tensors = [v for s in inner.state.values()
               for v in (s.values() if isinstance(s, dict) else s if isinstance(s, list) else [s])
               if torch.is_tensor(v)]
    for group in inner.param_groups:   # DoG keeps x₀ in its group
        tensors += [t for k, v in group.items() if k != "params" and isinstance(v, list)
                    for t in v if torch.is_tensor(t)]
    extra = getattr(opt, "state", {})
    if extra is not inner.state:   # wrappers' own state (HD's directions, ASGC's statistics)
        for v in extra.values():
            tensors += list(v.values()) if isinstance(v, dict) else [v]
    averager = getattr(opt, "averager", None)
    if averager is not None:
        tensors += list(averager.averaged_model.parameters())
    return sum(t.numel() for t in tensors if torch.is_tensor(t) and t.numel() > 1) / n


def main(argv=None):
    ap = parser(__doc__, REPEATS)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    built = {m: (title, *iteration(device, cfg)) for m, (title, cfg) in cases().items()}
    times = interleaved_times({m: b[1] for m, b in built.items()}, device, REPEATS[args.profile])
    ms = {m: 1e3 * statistics.median(t) for m, t in times.items()}
    bounds = {m: ratio_interval(times, m, BASELINE) for m in times}
    meta = {"device": device_name(device), "torch": torch.__version__, "profile": args.profile,
            "repeats": REPEATS[args.profile], "commit": git_commit()}
    rows = [{"benchmark": "MLNN iteration (fwd+bwd+step), batch 128", "method": m,
             "title": title, "baseline": BASELINE, "ratio": ms[m] / ms[BASELINE],
             "ratio_low": bounds[m][0], "ratio_high": bounds[m][1], "ms": ms[m],
             "baseline_ms": ms[BASELINE], "state_floats_per_param": state_floats(opt, model),
             **meta} for m, (title, _, opt, model) in built.items()]
    path = args.out / f"bench_rivals_{device.type}.csv"
    write_rows(path, rows)
    for r in rows:
        print(f"{r['title']:42s} {r['ratio']:.2f}x Adam, state {r['state_floats_per_param']:.1f}"
              " floats/param")
    print(f"wrote {path} ({meta['device']})")


if __name__ == "__main__":
    run_main(main)
