"""Step-time ratios of the HD optimizers and stacks against torch.optim, measured side by side.

Claim under test (the project's targets, docs/report/speed.md): analytic HD steps within 1.5x
torch's fused step, and on CPU within 1.15x of their floor (the fused step plus the least
reading that h_t needs); the autodiff Adam/SGD stack within 1.5x torch's default Adam iteration
on the 784-128-10 MLP (batch 256).
Every number printed is a ratio of medians from this one run on this one device; the optimizer
steps' rows also carry a 95% bootstrap interval on that ratio (ratio_lo, ratio_hi), resampling
whole rounds of the round-robin.
Runtime on 2 CPU cores: smoke ~10 s; quick ~1 min (it compiles the MLNN set's steps only) and
full ~3 min, most of it torch.compile building the compiled steps; full on an H100 ~5 min (it
also times each step recorded as a CUDA graph).

    python bench/bench_step.py --profile quick --out results/quick
"""
from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpp_dot  # noqa: E402
from common import device_name, parser, write_rows  # noqa: E402
from step_cases import (ONE_BUFFER_CASES, STEP_CASES, DotOnly, FusedStepPlusDot,  # noqa: E402
                        FusedStepPlusDotAndWrite, FusedStepPlusRead, PassesStubbed, TorchLists)
from timing import (REPEATS, interleaved_medians, interleaved_times,  # noqa: E402
                    make_params, mlnn_shapes, ratio_interval, resnet_like_shapes)

from hdrepro.autodiff import SGD, Adam, HyperStack, chandra  # noqa: E402
from hdrepro.cli_help import run_main  # noqa: E402
from hdrepro.engine.executors import git_commit  # noqa: E402
from hdrepro.engine.models import MLP  # noqa: E402
from hdrepro.optim import HD, CUDAGraphStep, native  # noqa: E402
from hdrepro.optim._hypergrad import dot  # noqa: E402


TORCH_DOT = "dot g·d alone (torch)"
CPP_DOT = "dot g·d alone (hand-written C++/OpenMP)"


SGDN_FLOOR = "SGDN (fused) + dot, the floor"
STORED_FLOOR = "SGDN (fused) + dot + write of d, the floor storing d"
ADAM_FLOOR = "Adam (fused) + dot, the floor"
MOMENTS_FLOOR = "Adam (fused) + read of g, m, v, the floor from moments"
#: SGDN-HD with its two passes over memory stubbed out: its cost beside them
STUBBED = "SGDN-HD (ours), memory passes stubbed"


def dot_cases(device) -> tuple[dict, list]:
    """On CPU: torch's dot, as the floor takes it, beside a hand-written multi-threaded one; the
    floor of an Adam-HD step that reads Adam's moments; our steps with the CPU kernels of
    hdrepro.optim.native turned off (torch's lists), to show what the kernels save, and the same
    on one buffer (the path where the kernels cannot be built); and SGDN-HD with its two passes
    stubbed out, to show what the step costs beside them."""
    if device.type != "cpu":
        return {}, []
    cases = {TORCH_DOT: lambda p: DotOnly(p, dot)}
    ratios = [(TORCH_DOT, "SGDN (fused)"), (TORCH_DOT, "Adam (fused)")]
    for name in ("SGDN-HD", "Adam-HD"):
        lists, flat = f"{name} (ours, torch lists)", f"{name} (ours, one buffer, torch lists)"
        cases[lists] = (lambda n: lambda p: TorchLists(STEP_CASES[f"{n} (ours)"](p)))(name)
        # with the kernels off, flattened parameters take the one-buffer step (hdrepro.optim.flat)
        cases[flat] = (lambda n: lambda p: TorchLists(ONE_BUFFER_CASES[f"{n} (ours, one buffer)"](
            p)))(name)
        base = f"{name.removesuffix('-HD')} (fused)"
        ratios += [(lists, base), (f"{name} (ours)", lists), (flat, base), (flat, lists)]
    kernel = cpp_dot.build()
    if isinstance(kernel, str):
        print(f"the hand-written kernels could not be built ({kernel}): their rows are skipped")
        return cases, ratios
    cases[CPP_DOT] = lambda p: DotOnly(p, kernel)
    cases[MOMENTS_FLOOR] = lambda p: FusedStepPlusRead(torch.optim.Adam(p, 1e-3, fused=True),
                                                       kernel)
    # the floors with the hand-written dot, which is at least as fast as torch's: the lower
    # floor, so the stricter one
    for floor, base in ((SGDN_FLOOR, "SGDN (fused)"), (ADAM_FLOOR, "Adam (fused)")):
        cases[floor] = (lambda base: lambda p: FusedStepPlusDot(STEP_CASES[base](p), kernel))(
            base)
    cases[STORED_FLOOR] = lambda p: FusedStepPlusDotAndWrite(STEP_CASES["SGDN (fused)"](p),
                                                             kernel)
    ratios += [(CPP_DOT, TORCH_DOT), (MOMENTS_FLOOR, "Adam (fused)"),
               (STORED_FLOOR, "SGDN (fused)"), ("SGDN-HD (ours)", STORED_FLOOR),
               ("Adam-HD (ours)", MOMENTS_FLOOR), ("HD(Adam fused) (ours)", MOMENTS_FLOOR)]
    if native.kernels() is not None and native.kernels().sgd_exact:
        # what SGDN-HD costs beside its two passes, against the floor it is held to
        cases[STUBBED] = lambda p: PassesStubbed(STEP_CASES["SGDN-HD (ours)"](p))
        ratios.append((STUBBED, STORED_FLOOR))
    return cases, ratios


def compiled_step(make, mode=None):
    """The same optimizer with its step() wrapped in torch.compile (as users do), after one eager
    step: the first step builds the state, and compiling it would cost one more graph, used once
    (the step count then forces one recompile either way); the timed steps are the same."""
    def make_compiled(params):
        opt = make(params)
        opt.step()
        opt.step = torch.compile(opt.step, mode=mode)
        return opt
    return make_compiled


def compile_cases(device, profile: str, slow_to_compile: bool) -> tuple[dict, list]:
    """Our steps under torch.compile. torch's fused kernel stays uncompiled (torch marks it so);
    the hypergradient chain around it is compiled. On a GPU also with CUDA graphs
    (mode="reduce-overhead"). Not in the smoke profile; on CPU the quick profile skips a set
    that is slow to compile (the ResNet-like set's 160-tensor graphs take about a minute on 2
    cores, which the quick profile's 30 minutes cannot spare; the MLNN set's take seconds)."""
    if profile == "smoke" or (device.type == "cpu" and profile == "quick" and slow_to_compile):
        return {}, []
    modes = {"compiled": None}
    if device.type == "cuda":
        modes["compiled, CUDA graphs"] = "reduce-overhead"
    cases, ratios = {}, []
    for base, fused in (("Adam-HD", "Adam (fused)"), ("SGDN-HD", "SGDN (fused)")):
        for label, mode in modes.items():
            name = f"{base} (ours, {label})"
            cases[name] = compiled_step(STEP_CASES[f"{base} (ours)"], mode)
            ratios += [(name, fused), (name, f"{base} (ours)")]
    return cases, ratios


def graph_cases(device) -> tuple[dict, list]:
    """On a GPU: steps recorded once as a CUDA graph and replayed (hdrepro.optim.CUDAGraphStep),
    ours and torch's fused steps alike (torch records its Adam with capturable=True). The graphed
    HD steps are set against the eager fused step, as the target is worded, and against the
    graphed fused step, like for like. One eager step before the recording (warmup_steps=1), so
    that drop_failing's three steps already record and replay."""
    if device.type != "cuda":
        return {}, []
    graphed = lambda make: lambda p: CUDAGraphStep(make(p), warmup_steps=1)  # noqa: E731
    cases = {
        "Adam-HD (ours, CUDA graph)": graphed(STEP_CASES["Adam-HD (ours)"]),
        "SGDN-HD (ours, CUDA graph)": graphed(STEP_CASES["SGDN-HD (ours)"]),
        "HD(Adam fused) (ours, CUDA graph)": graphed(lambda p: HD(
            torch.optim.Adam(p, 1e-3, fused=True, capturable=True), 1e-8)),
        "Adam (fused, CUDA graph)": graphed(
            lambda p: torch.optim.Adam(p, 1e-3, fused=True, capturable=True)),
        "SGDN (fused, CUDA graph)": graphed(STEP_CASES["SGDN (fused)"]),
    }
    ratios = []
    for ours, base, loop in (("Adam-HD", "Adam", "Adam-HD"), ("SGDN-HD", "SGDN", "SGDN-HD"),
                             ("HD(Adam fused)", "Adam", "Adam-HD")):
        name = f"{ours} (ours, CUDA graph)"
        ratios += [(name, f"{base} (fused)"), (name, f"{base} (fused, CUDA graph)"),
                   (f"{loop} (reference-style loop)", name)]
    ratios += [("Adam (fused, CUDA graph)", "Adam (fused)"),
               ("SGDN (fused, CUDA graph)", "SGDN (fused)")]
    return cases, ratios


def one_buffer_cases(device) -> tuple[dict, list]:
    """On a GPU: our eager steps with the parameters flattened into one buffer
    (hdrepro.optim.flatten_), against torch's eager fused steps (the 2x target) and against our
    eager steps on separate tensors."""
    if device.type != "cuda":
        return {}, []
    ratios = []
    for ours, base in (("Adam-HD", "Adam"), ("SGDN-HD", "SGDN"), ("HD(Adam fused)", "Adam")):
        ratios += [(f"{ours} (ours, one buffer)", f"{base} (fused)"),
                   (f"{ours} (ours, one buffer)", f"{ours} (ours)")]
    return dict(ONE_BUFFER_CASES), ratios


def drop_failing(steps: dict, names) -> None:
    """Run each named step a few times; drop (and say so) any that raises, e.g. a backend
    that cannot compile on this machine, so the other rows are still measured."""
    for name in names:
        try:
            for _ in range(3):
                steps[name].step()
        except Exception as err:  # noqa: BLE001 -- any compiler failure: report, go on
            print(f"{name}: {type(err).__name__}: {str(err)[:200]}; its rows are skipped")
            del steps[name]


STEP_RATIOS = [  # (numerator, denominator)
    ("SGDN-HD (ours)", "SGDN (fused)"), ("SGDN-HD (reference-style loop)", "SGDN (fused)"),
    ("SGDN-HD (reference-style loop)", "SGDN-HD (ours)"),
    ("SGDN (fused) + dot, the floor", "SGDN (fused)"),
    ("SGDN-HD (ours)", "SGDN (fused) + dot, the floor"),
    ("Adam-HD (ours)", "Adam (fused)"), ("Adam (fused) + dot, the floor", "Adam (fused)"),
    ("Adam-HD (ours)", "Adam (fused) + dot, the floor"),
    ("HD(Adam fused) (ours)", "Adam (fused)"),
    ("Adam (foreach)", "Adam (fused)"), ("Adam-HD (reference-style loop)", "Adam (fused)"),
    ("Adam-HD (reference-style loop)", "Adam-HD (ours)"),
]


def bench_steps(device, profile) -> list[dict]:
    rows = []
    dots, dot_ratios = dot_cases(device)
    # every compiled optimizer adds graphs for the one shared step() code object
    torch._dynamo.config.cache_size_limit = 64
    for set_name, shapes, slow_to_compile in (
            ("resnet-like 160 tensors", resnet_like_shapes(), True),
            ("MLNN 784-1000-1000-10", mlnn_shapes(), False)):
        torch._dynamo.reset()
        compiles, compile_ratios = compile_cases(device, profile, slow_to_compile)
        graphs, graph_ratios = graph_cases(device)
        flats, flat_ratios = one_buffer_cases(device)
        steps = {name: make(make_params(shapes, device)) for name, make in
                 {**STEP_CASES, **dots, **compiles, **graphs, **flats}.items()}
        if CPP_DOT in steps:
            cpp_dot.checked(steps[CPP_DOT].kernel, steps[CPP_DOT].grads, steps[CPP_DOT].dirs)
            cpp_dot.checked(steps[MOMENTS_FLOOR].kernel, *steps[MOMENTS_FLOOR].lists)
        drop_failing(steps, {**compiles, **graphs})
        times = interleaved_times({name: s.step for name, s in steps.items()}, device,
                                  REPEATS[profile])
        ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        n_params = sum(torch.Size(s).numel() for s in shapes)
        for num, den in STEP_RATIOS + dot_ratios + compile_ratios + graph_ratios + flat_ratios:
            if num not in ms or den not in ms:
                continue
            lo, hi = ratio_interval(times, num, den)
            rows.append({"benchmark": "optimizer step", "params": set_name,
                         "n_tensors": len(shapes), "n_params": n_params, "ours": num,
                         "baseline": den, "ratio": ms[num] / ms[den], "ratio_lo": lo,
                         "ratio_hi": hi, "ours_ms": ms[num], "baseline_ms": ms[den]})
    return rows


def mlp_iteration(device, make_opt, batch=256):
    """One training iteration (forward, backward, step) of the 784-128-10 tanh MLP."""
    torch.manual_seed(0)
    model = MLP((784, 128, 10), activation=torch.nn.Tanh).to(device)
    opt = make_opt(model.parameters())
    x = torch.randn(batch, 784, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def it():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return it


def gdtuo_iteration(device, stack: str, batch=256):
    """The same iteration with Chandra et al.'s package (model wrapper, create_graph=True)."""
    import warnings

    from gradient_descent_the_ultimate_optimizer import gdtuo
    # Its create_graph=True backward makes torch warn about a reference cycle; that is its design.
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
    torch.manual_seed(0)
    model = MLP((784, 128, 10), activation=torch.nn.Tanh).to(device)
    opt = {"Adam/SGD": lambda: gdtuo.Adam(alpha=1e-3, optimizer=gdtuo.SGD(1e-5)),
           "SGD/SGD": lambda: gdtuo.SGD(alpha=1e-2, optimizer=gdtuo.SGD(1e-5))}[stack]()
    mw = gdtuo.ModuleWrapper(model, optimizer=opt)
    mw.initialize()
    x = torch.randn(batch, 784, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def it():
        mw.begin()
        mw.zero_grad()
        torch.nn.functional.cross_entropy(mw.forward(x), y).backward(create_graph=True)
        mw.step()
    return it


def bench_stacks(device, repeats) -> list[dict]:
    cases = {
        "torch Adam (default)": lambda p: torch.optim.Adam(p, 1e-3),
        "torch SGD (default)": lambda p: torch.optim.SGD(p, 1e-2),
        "HyperStack Adam/SGD (ours)": lambda p: HyperStack(p, [Adam(1e-3), SGD(1e-5)]),
        "HyperStack SGD/SGD (ours)": lambda p: HyperStack(p, [SGD(1e-2), SGD(1e-5)]),
        "HyperStack Adam/SGD clip (ours)": lambda p: HyperStack(p, [Adam(1e-3),
                                                                    SGD(1e-5, clip=True)]),
        # as the clipping experiment runs it: Chandra et al.'s Adam (α, β₁, β₂ learned)
        "HyperStack Adam(α,β1,β2)/SGD clip (ours)": lambda p: HyperStack(
            p, [chandra("adam"), SGD(1e-5, clip=True)]),
        "HyperStack Adam(α,β1,β2)/SGD (ours)": lambda p: HyperStack(p, [chandra("adam"),
                                                                        SGD(1e-5)]),
    }
    its = {n: mlp_iteration(device, make) for n, make in cases.items()}
    ratios = [("HyperStack Adam/SGD (ours)", "torch Adam (default)"),
              ("HyperStack Adam/SGD clip (ours)", "torch Adam (default)"),
              ("HyperStack Adam(α,β1,β2)/SGD clip (ours)", "torch Adam (default)"),
              ("HyperStack SGD/SGD (ours)", "torch SGD (default)")]
    if importlib.util.find_spec("gradient_descent_the_ultimate_optimizer"):
        for stack, base in (("Adam/SGD", "torch Adam (default)"),
                            ("SGD/SGD", "torch SGD (default)")):
            name = f"gdtuo {stack} (Chandra et al.)"
            its[name] = gdtuo_iteration(device, stack)
            ratios += [(name, base), (f"HyperStack {stack} (ours)", name)]
        # their Adam learns α, β₁ and β₂: the like-for-like comparison
        ratios.append(("HyperStack Adam(α,β1,β2)/SGD (ours)", "gdtuo Adam/SGD (Chandra et al.)"))
    else:
        print("gradient-descent-the-ultimate-optimizer not installed: its rows are skipped "
              "(pip install -e '.[bench]')")
    ms = interleaved_medians(its, device, repeats * 3)
    return [{"benchmark": "MLP iteration (fwd+bwd+step)", "params": "784-128-10 tanh, batch 256",
             "n_tensors": 4, "n_params": 784 * 128 + 128 + 1280 + 10, "ours": num,
             "baseline": den, "ratio": ms[num] / ms[den], "ours_ms": ms[num],
             "baseline_ms": ms[den]} for num, den in ratios]



def main(argv=None):
    ap = parser(__doc__, REPEATS, "folder for bench_step_<device>.csv")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    repeats = REPEATS[args.profile]
    rows = bench_steps(device, args.profile) + bench_stacks(device, repeats)
    meta = {"device": device_name(device), "torch": torch.__version__, "profile": args.profile,
            "repeats": repeats, "commit": git_commit()}
    for r in rows:
        r.update(meta)
    path = args.out / f"bench_step_{device.type}.csv"
    write_rows(path, rows)
    print(f"{'benchmark':30s} {'params':26s} {'ours':34s} {'baseline':32s} ratio")
    for r in rows:
        print(f"{r['benchmark'][:30]:30s} {r['params'][:26]:26s} {r['ours'][:34]:34s} "
              f"{r['baseline'][:32]:32s} {r['ratio']:.2f}")
    print(f"wrote {path} ({meta['device']})")


if __name__ == "__main__":
    run_main(main)
