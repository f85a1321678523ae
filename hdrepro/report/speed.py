"""The report's speed appendix: the benchmark tables, the ratios quoted in the prose and the verdicts
against the targets, all read from bench/bench_step.py's CSVs (and bench/profile_step.py's on a
GPU; bench/bench_denormal.py's for subnormal floats). The grid-throughput part stays with the
grids in :mod:`hdrepro.report.grids`."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .format import holding, md_table, read_csv


def bench_table(results: Path, device: str) -> str:
    rows = read_csv(holding(results, f"bench_step_{device}.csv") / f"bench_step_{device}.csv")
    if not rows:
        return (f"_Not measured: no `bench_step_{device}.csv` in this results folder "
                f"({'no GPU measurement is in these results' if device == 'cuda' else 'run bench/bench_step.py'})._")
    head = (f"Device: **{rows[0]['device']}**, torch {rows[0]['torch']}, median of "
            f"{rows[0]['repeats']} timed calls per entry (profile {rows[0]['profile']}).\n\n")
    body = [[r["benchmark"], r["params"], r["ours"], r["baseline"], f"{float(r['ratio']):.2f}"]
            for r in rows]
    return head + md_table(["benchmark", "parameters", "numerator", "denominator",
                            "time ratio"], body)


def ratio(results: Path, device: str, ours: str, baseline: str, params: str = "") -> str:
    found = ratio_interval(results, device, ours, baseline, params)
    return "not measured" if found is None else f"{found[0]:.2f}×"


def ratio_interval(results: Path, device: str, ours: str, baseline: str,
                   params: str = "") -> tuple[float, float, float] | None:
    """(ratio, lo, hi): the ratio and its 95% bootstrap interval as bench_step.py stored them
    (lo = hi = the ratio in a CSV without intervals); None where not measured."""
    results = holding(results, f"bench_step_{device}.csv")
    for r in read_csv(results / f"bench_step_{device}.csv"):
        if r["ours"] == ours and r["baseline"] == baseline and params in r["params"]:
            x = float(r["ratio"])
            return x, float(r.get("ratio_lo") or x), float(r.get("ratio_hi") or x)
    return None


def shown_interval(device: str, ours: str, baseline: str, params: str = ""
                   ) -> Callable[[Path], str]:
    """The SECTIONS entry for one ratio with its 95% interval, as the report prints it."""
    def text(results: Path) -> str:
        found = ratio_interval(results, device, ours, baseline, params)
        if found is None:
            return "not measured"
        x, lo, hi = found
        return f"{x:.2f}× [{lo:.2f}, {hi:.2f}]"
    return text


def against_target(results: Path, device: str, pairs: list[tuple[str, str]],
                   params: str = "", target: float = 1.5, at_least: bool = False) -> str:
    """"meets" if every (ours, baseline) ratio is within the target (at most it, or with
    `at_least` at least it), else "misses"; read from the ratios as the report prints them
    (2 digits), so that verdict and digits never disagree."""
    shown = [ratio(results, device, ours, baseline, params) for ours, baseline in pairs]
    if "not measured" in shown:
        return "has not been measured against"
    within = (lambda x: x >= target) if at_least else (lambda x: x <= target)
    return "meets" if all(within(float(x.rstrip("×"))) for x in shown) else "misses"


def compiled_cuda(results: Path) -> str:
    """The GPU sentence on torch.compile'd steps: their ratios, or that no GPU run has them."""
    shown = {label: ratio(results, "cuda", f"Adam-HD (ours, {label})", "Adam (fused)", "resnet")
             for label in ("compiled", "compiled, CUDA graphs")}
    if all(v == "not measured" for v in shown.values()):
        return ("bench_step.py also times our steps under torch.compile, with and without "
                "CUDA graphs (mode=\"reduce-overhead\"); the GPU run in these results predates "
                "those rows, so they are not measured on the GPU yet.")
    plain, graphs = shown.values()
    eager = ratio(results, "cuda", "Adam-HD (ours, compiled)", "Adam-HD (ours)", "resnet")
    return (f"Under torch.compile, Adam-HD takes {plain} of the fused step ({eager} of our "
            "eager step: slower on the GPU). With mode=\"reduce-overhead\" "
            + ("the compiled steps fail within their first calls (torch's CUDA-graph trees "
               "overwrite a graph's outputs on the next replay, and our step keeps α, one such "
               "output, for the next step), so those rows are skipped: record the step with "
               "CUDAGraphStep instead." if graphs == "not measured"
               else f"Adam-HD takes {graphs}."))


def kernels_cuda(results: Path) -> str:
    """Kernels per eager step on the ResNet-like set, from bench/profile_step.py."""
    rows = {r["step"]: r for r in read_csv(holding(results, "profile_step_cuda.csv")
                                           / "profile_step_cuda.csv") if "resnet" in r["params"]}
    if not rows:
        return "Kernel launches per step have not been counted in these results."
    n = {step: f"{float(r['kernels_per_step']):.0f}" for step, r in rows.items()}
    return (f"Counted by `bench/profile_step.py` (`profile_step_cuda.csv`), an eager step on the "
            f"ResNet-like set launches {n['Adam-HD (ours)']} kernels for Adam-HD and "
            f"{n['HD(Adam fused) (ours)']} for HD(Adam fused) against {n['Adam (fused)']} for "
            f"torch's fused Adam, and {n['SGDN-HD (ours)']} for SGDN-HD against "
            f"{n['SGDN (fused)']} for fused SGDN.")


#: the eager steps on one buffer (hdrepro.optim.flatten_), each beside torch's eager fused step
ONE_BUFFER_STEPS = [("Adam-HD (ours, one buffer)", "Adam (fused)"),
                    ("SGDN-HD (ours, one buffer)", "SGDN (fused)")]


def one_buffer_cuda(results: Path, target: float = 2.0, most_kernels: int = 16) -> str:
    """The GPU sentence on the one-buffer eager steps: their ratios to torch's eager fused step
    with 95% intervals, the kernels each launches on the ResNet-like set, and the verdict on
    both targets (within `target`× by :func:`interval_verdict`, and at most `most_kernels`
    launches), or that no GPU run has them."""
    found = [ratio_interval(results, "cuda", ours, base, "resnet")
             for ours, base in ONE_BUFFER_STEPS]
    kernels = {r["step"]: float(r["kernels_per_step"]) for r in read_csv(
        holding(results, "profile_step_cuda.csv") / "profile_step_cuda.csv")
        if "resnet" in r["params"]}
    counts = [kernels.get(ours) for ours, _ in ONE_BUFFER_STEPS]
    if None in found or None in counts:
        return ("Laid out in one buffer (`hdrepro.optim.flatten_`), the eager steps run a "
                "fixed number of kernels whatever the number of tensors; the GPU run in these "
                "results predates that path, so its times against the 2× target and its "
                "kernels are not measured yet.")
    timed = interval_verdict([(lo, hi) for _, lo, hi in found], target)
    launches = "meets" if max(counts) <= most_kernels else "misses"
    (a, a_lo, a_hi), (s, s_lo, s_hi) = found
    return (f"Laid out in one buffer (`hdrepro.optim.flatten_`), eager Adam-HD takes "
            f"{a:.2f}× [{a_lo:.2f}, {a_hi:.2f}] and SGDN-HD {s:.2f}× [{s_lo:.2f}, {s_hi:.2f}] of "
            f"torch's eager fused step, launching {counts[0]:.0f} and {counts[1]:.0f} kernels "
            f"per step: this **{timed}** the {target:g}× target and **{launches}** the "
            f"{most_kernels}-launch one.")


def dot_bound(results: Path, device: str = "cpu") -> str:
    """What the dot product alone leaves of the 1.5× budget: 1 + (dot / fused step), with the
    faster of torch's and the hand-written dot, from the ratios as printed."""
    shown = {name: ratio(results, device, ours, base, "resnet") for name, ours, base in (
        ("sgdn", "dot g·d alone (torch)", "SGDN (fused)"),
        ("adam", "dot g·d alone (torch)", "Adam (fused)"),
        ("cpp", "dot g·d alone (hand-written C++/OpenMP)", "dot g·d alone (torch)"))}
    if "not measured" in (shown["sgdn"], shown["adam"]):
        return "The dot alone has not been timed in these results."
    value = {k: float(v.rstrip("×")) for k, v in shown.items() if v != "not measured"}
    faster = min(1.0, value.get("cpp", 1.0))
    parts = []
    for name, step in (("sgdn", "SGDN"), ("adam", "Adam")):
        bound = 1 + value[name] * faster
        verdict = ("already above the 1.5× target before any other work" if bound > 1.5 else
                   f"leaving {1.5 - bound:.2f}× of the fused step for everything else "
                   "(d_{t−1}, the α update)")
        parts.append(f"{bound:.2f}× for {step}, {verdict}")
    return ("The fused step plus the dot alone, with the faster of the two kernels, comes to "
            + "; and ".join(parts) + ".")


#: the analytic HD steps held to the 1.5× target, each beside torch's fused step
ANALYTIC_STEPS = [("Adam-HD (ours)", "Adam (fused)"), ("SGDN-HD (ours)", "SGDN (fused)")]
#: bench_step.py's floors (the fused step plus the least traffic h_t needs), by the name it prints
STORED_FLOOR = "SGDN (fused) + dot + write of d, the floor storing d"
MOMENTS_FLOOR = "Adam (fused) + read of g, m, v, the floor from moments"
#: the analytic HD steps held to the 1.15× target, each beside its own floor
FLOOR_STEPS = [("SGDN-HD (ours)", STORED_FLOOR), ("Adam-HD (ours)", MOMENTS_FLOOR),
               ("HD(Adam fused) (ours)", MOMENTS_FLOOR)]


#: bench_step.py's SGDN-HD with its two passes over memory stubbed out
STUBBED = "SGDN-HD (ours), memory passes stubbed"


def fixed_cost(results: Path) -> str:
    """SGDN-HD against its floor, split in two on both parameter sets: the step with both passes
    over memory stubbed out, and the rest (our step minus the stubbed one), which is the time of
    the two passes themselves, each as a share of the floor."""
    parts = []
    for params, label in (("resnet", "ResNet-like set"), ("MLNN", "MLNN set")):
        ours = ratio_interval(results, "cpu", "SGDN-HD (ours)", STORED_FLOOR, params)
        stub = ratio_interval(results, "cpu", STUBBED, STORED_FLOOR, params)
        if ours is None or stub is None:
            return "the step's cost beside its passes has not been timed in these results"
        whole, around = round(100 * ours[0]), round(100 * stub[0])
        parts.append(f"on the {label} SGDN-HD takes {whole}% of its floor, its step with both "
                     f"passes stubbed out {around}%, so the two passes themselves "
                     f"{whole - around}%")
    return "; ".join(parts)


def floor_target(results: Path, target: float = 1.15) -> str:
    """The 1.15× verdict over both parameter sets and the three steps held to it (SGDN-HD,
    Adam-HD, HD around torch's fused Adam), each step judged on its 95% interval (as
    printed, 2 digits): "meets" if every interval lies at or below the target, "misses" if any
    lies wholly above it, and otherwise a tie: the steps are within the timing's noise of it."""
    found = [ratio_interval(results, "cpu", ours, baseline, params)
             for params in ("resnet", "MLNN") for ours, baseline in FLOOR_STEPS]
    if None in found:
        return "has not been measured against"
    return interval_verdict([(lo, hi) for _, lo, hi in found], target)


def interval_verdict(intervals: list[tuple[float, float]], target: float,
                     at_most: bool = True) -> str:
    """Ratios held to `target`, each by its interval (lo, hi), compared as printed (2 digits).
    With `at_most` (a time ratio: lower is better) "meets" if every interval lies at or below
    the target and "misses" if any lies wholly above it; otherwise (a speed-up: higher is
    better) "meets" if every interval lies at or above it and "misses" if any lies wholly
    below. Anything else is a tie: "is within the timing's noise of" the target."""
    def wrong_side(lo: float, hi: float) -> bool:   # wholly on the wrong side of the target
        return round(lo, 2) > target if at_most else round(hi, 2) < target

    def right_side(lo: float, hi: float) -> bool:   # wholly on its side, the target included
        return round(hi, 2) <= target if at_most else round(lo, 2) >= target

    if any(wrong_side(lo, hi) for lo, hi in intervals):
        return "misses"
    if all(right_side(lo, hi) for lo, hi in intervals):
        return "meets"
    return "is within the timing's noise of"


#: the same steps recorded as CUDA graphs, beside torch's eager fused step (the target's words)
GRAPHED_STEPS = [("Adam-HD (ours, CUDA graph)", "Adam (fused)"),
                 ("SGDN-HD (ours, CUDA graph)", "SGDN (fused)")]
#: the reference-style loop beside our graphed steps (target: at least 20×)
LOOP_VS_GRAPHED = [("Adam-HD (reference-style loop)", "Adam-HD (ours, CUDA graph)"),
                   ("SGDN-HD (reference-style loop)", "SGDN-HD (ours, CUDA graph)")]


def subnormals(results: Path) -> str:
    """bench/bench_denormal.py's ratios: an optimizer step with a share of its moments
    subnormal, against the same step with subnormals flushed to zero."""
    path = holding(results, "bench_denormal_cpu.csv") / "bench_denormal_cpu.csv"
    if not path.exists():
        return ("The cost of subnormal moments has not been measured in these results "
                "(`python bench/bench_denormal.py`).")
    rows = {(r["optimizer"], float(r["subnormal_share"])): r for r in read_csv(path)}

    def at(name: str, share: float) -> str:
        r = rows.get((name, share))
        return ("not measured" if r is None else
                f"{float(r['ratio']):.2f}× [{float(r['ratio_low']):.2f}, "
                f"{float(r['ratio_high']):.2f}]")
    control = at("Adam-HD", 0.0)
    return (f"With every moment entry subnormal, an Adam step takes {at('Adam', 1.0)} and an "
            f"Adam-HD step {at('Adam-HD', 1.0)} of its time with subnormals flushed to zero; "
            f"with a tenth of them, {at('Adam', 0.1)} and {at('Adam-HD', 0.1)} (none: "
            f"Adam-HD {control}).")


def shown(device: str, ours: str, baseline: str, params: str = "") -> Callable[[Path], str]:
    """The SECTIONS entry for one ratio as the report prints it."""
    return lambda r: ratio(r, device, ours, baseline, params)


SECTIONS: dict[str, Callable[[Path], str]] = {
    "bench_cpu_table": lambda r: bench_table(r, "cpu"),
    "subnormals_cpu": subnormals,
    "bench_cuda_table": lambda r: bench_table(r, "cuda"),
    "stack_ratio_cpu": shown("cpu", "HyperStack Adam/SGD (ours)", "torch Adam (default)"),
    "gdtuo_ratio_cpu": shown("cpu", "gdtuo Adam/SGD (Chandra et al.)", "torch Adam (default)"),
    "stack_chandra_ratio_cpu": shown("cpu", "HyperStack Adam(α,β1,β2)/SGD clip (ours)",
                                     "torch Adam (default)"),
    "stack_chandra_target_cpu": lambda r: against_target(
        r, "cpu", [("HyperStack Adam(α,β1,β2)/SGD clip (ours)", "torch Adam (default)")]),
    "stack_chandra_vs_gdtuo_cpu": shown("cpu", "HyperStack Adam(α,β1,β2)/SGD (ours)",
                                        "gdtuo Adam/SGD (Chandra et al.)"),
    "adamhd_ratio_cpu": shown("cpu", "Adam-HD (ours)", "Adam (fused)", "resnet"),
    "sgdnhd_ratio_cpu": shown("cpu", "SGDN-HD (ours)", "SGDN (fused)", "resnet"),
    "analytic_target_cpu": lambda r: against_target(r, "cpu", ANALYTIC_STEPS, "resnet"),
    "sgdn_floor_cpu": shown("cpu", "SGDN (fused) + dot, the floor", "SGDN (fused)", "resnet"),
    "stored_floor_cpu": shown("cpu", STORED_FLOOR, "SGDN (fused)", "resnet"),
    "moments_floor_cpu": shown("cpu", MOMENTS_FLOOR, "Adam (fused)", "resnet"),
    "sgdnhd_vs_floor_cpu": shown_interval("cpu", "SGDN-HD (ours)", STORED_FLOOR, "resnet"),
    "sgdnhd_vs_floor_mlnn_cpu": shown_interval("cpu", "SGDN-HD (ours)", STORED_FLOOR, "MLNN"),
    "adamhd_vs_floor_cpu": shown_interval("cpu", "Adam-HD (ours)", MOMENTS_FLOOR, "resnet"),
    "adamhd_vs_floor_mlnn_cpu": shown_interval("cpu", "Adam-HD (ours)", MOMENTS_FLOOR, "MLNN"),
    "hdadam_vs_floor_cpu": shown_interval("cpu", "HD(Adam fused) (ours)", MOMENTS_FLOOR, "resnet"),
    "hdadam_vs_floor_mlnn_cpu": shown_interval("cpu", "HD(Adam fused) (ours)", MOMENTS_FLOOR,
                                               "MLNN"),
    "floor_target_cpu": floor_target,
    "sgdnhd_fixed_cpu": fixed_cost,
    "sgdnhd_vs_dotfloor_cpu": shown("cpu", "SGDN-HD (ours)", "SGDN (fused) + dot, the floor",
                                    "resnet"),
    "adamhd_vs_dotfloor_cpu": shown("cpu", "Adam-HD (ours)", "Adam (fused) + dot, the floor",
                                    "resnet"),
    "sgdn_native_vs_lists_cpu": shown("cpu", "SGDN-HD (ours)", "SGDN-HD (ours, torch lists)",
                                      "resnet"),
    "adam_native_vs_lists_cpu": shown("cpu", "Adam-HD (ours)", "Adam-HD (ours, torch lists)",
                                      "resnet"),
    "sgdn_flat_vs_lists_cpu": shown_interval("cpu", "SGDN-HD (ours, one buffer, torch lists)",
                                             "SGDN-HD (ours, torch lists)", "resnet"),
    "adam_flat_vs_lists_cpu": shown_interval("cpu", "Adam-HD (ours, one buffer, torch lists)",
                                             "Adam-HD (ours, torch lists)", "resnet"),
    "sgdn_flat_cpu": shown("cpu", "SGDN-HD (ours, one buffer, torch lists)", "SGDN (fused)",
                           "resnet"),
    "adam_flat_cpu": shown("cpu", "Adam-HD (ours, one buffer, torch lists)", "Adam (fused)",
                           "resnet"),
    "adam_floor_cpu": shown("cpu", "Adam (fused) + dot, the floor", "Adam (fused)", "resnet"),
    "dot_vs_sgdn_cpu": shown("cpu", "dot g·d alone (torch)", "SGDN (fused)", "resnet"),
    "dot_vs_adam_cpu": shown("cpu", "dot g·d alone (torch)", "Adam (fused)", "resnet"),
    "cpp_dot_cpu": shown("cpu", "dot g·d alone (hand-written C++/OpenMP)",
                         "dot g·d alone (torch)", "resnet"),
    "dot_bound_cpu": dot_bound,
    "compiled_adamhd_cpu": shown("cpu", "Adam-HD (ours, compiled)", "Adam (fused)", "MLNN"),
    "compiled_adamhd_vs_eager_cpu": shown("cpu", "Adam-HD (ours, compiled)", "Adam-HD (ours)",
                                          "MLNN"),
    "compiled_sgdnhd_vs_eager_cpu": shown("cpu", "SGDN-HD (ours, compiled)", "SGDN-HD (ours)",
                                          "MLNN"),
    "compiled_cuda": compiled_cuda,
    "foreach_ratio_cpu": shown("cpu", "Adam (foreach)", "Adam (fused)", "resnet"),
    "loop_ratio_cpu": shown("cpu", "Adam-HD (reference-style loop)", "Adam-HD (ours)", "resnet"),
    "analytic_target_cuda": lambda r: against_target(r, "cuda", ANALYTIC_STEPS, "resnet"),
    "kernels_cuda": kernels_cuda,
    "one_buffer_cuda": one_buffer_cuda,
    "adamhd_graph_cuda": shown("cuda", "Adam-HD (ours, CUDA graph)", "Adam (fused)", "resnet"),
    "sgdnhd_graph_cuda": shown("cuda", "SGDN-HD (ours, CUDA graph)", "SGDN (fused)", "resnet"),
    "hdadam_graph_cuda": shown("cuda", "HD(Adam fused) (ours, CUDA graph)", "Adam (fused)",
                               "resnet"),
    "graph_target_cuda": lambda r: against_target(r, "cuda", GRAPHED_STEPS, "resnet"),
    "adamhd_graph_vs_graph_cuda": shown("cuda", "Adam-HD (ours, CUDA graph)",
                                        "Adam (fused, CUDA graph)", "resnet"),
    "sgdnhd_graph_vs_graph_cuda": shown("cuda", "SGDN-HD (ours, CUDA graph)",
                                        "SGDN (fused, CUDA graph)", "resnet"),
    "fused_graph_cuda": shown("cuda", "Adam (fused, CUDA graph)", "Adam (fused)", "resnet"),
    "loop_vs_graph_cuda": shown("cuda", "Adam-HD (reference-style loop)",
                                "Adam-HD (ours, CUDA graph)", "resnet"),
    "sgdn_loop_vs_graph_cuda": shown("cuda", "SGDN-HD (reference-style loop)",
                                     "SGDN-HD (ours, CUDA graph)", "resnet"),
    "loop_target_cuda": lambda r: against_target(r, "cuda", LOOP_VS_GRAPHED, "resnet", 20.0,
                                                 at_least=True),
    "adamhd_graph_mlnn_cuda": shown("cuda", "Adam-HD (ours, CUDA graph)", "Adam (fused)",
                                    "MLNN"),
    "loop_vs_graph_mlnn_cuda": shown("cuda", "Adam-HD (reference-style loop)",
                                     "Adam-HD (ours, CUDA graph)", "MLNN"),
    "stack_target_cuda": lambda r: against_target(
        r, "cuda", [("HyperStack Adam/SGD (ours)", "torch Adam (default)")]),
    "stack_chandra_ratio_cuda": shown("cuda", "HyperStack Adam(α,β1,β2)/SGD clip (ours)",
                                      "torch Adam (default)"),
    "stack_ratio_cuda": shown("cuda", "HyperStack Adam/SGD (ours)", "torch Adam (default)"),
    "gdtuo_ratio_cuda": shown("cuda", "gdtuo Adam/SGD (Chandra et al.)", "torch Adam (default)"),
    "adamhd_ratio_cuda": shown("cuda", "Adam-HD (ours)", "Adam (fused)", "resnet"),
    "sgdnhd_ratio_cuda": shown("cuda", "SGDN-HD (ours)", "SGDN (fused)", "resnet"),
    "hdadam_ratio_cuda": shown("cuda", "HD(Adam fused) (ours)", "Adam (fused)", "resnet"),
    "loop_ratio_cuda": shown("cuda", "Adam-HD (reference-style loop)", "Adam-HD (ours)",
                             "resnet"),
}
