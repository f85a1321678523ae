"""The ``hdrepro`` command (also ``python -m hdrepro``): one entry point for everything
``run_all.sh`` does.

    hdrepro train ...          one training run: model, data, optimizer, α₀, β, γ, …
    hdrepro grid NAME ...      a grid of the reproducibility report (logreg, mlnn, bettercnn, gamma)
    hdrepro stacks ...         the clipping report's Tables 1-5
    hdrepro run NAME ...       any other experiment (fig1, equivalence, family_sensitivity, rivals,
                               asgc, epsilon, threshold_grid, convex_hdm, contested)
    hdrepro plot NAME ...      redraw an experiment's figures from its saved results
    hdrepro report ...         write REPORT.md from saved results
    hdrepro bench NAME ...     a benchmark (step, grid, rivals, denormal)
    hdrepro data ...           fetch, describe or verify the data sets

The experiments and benchmarks are the repository's scripts in ``experiments/`` and ``bench/``;
the command runs them as scripts (the library never imports them), so those subcommands need a
checkout of the repository. ``hdrepro <subcommand> --help`` lists each one's options and defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

from .cli_help import DATA_HELP, HelpFormatter
from .errors import EXPECTED_ERRORS, missing_extra

GRIDS = ("logreg", "mlnn", "bettercnn", "gamma", "seeds_logreg", "seeds_mlnn", "seeds_bettercnn")
EXPERIMENTS = ("fig1", "equivalence", "family_sensitivity", "rivals", "asgc", "epsilon",
               "threshold_grid", "bettercnn_divergence", "convex_hdm", "contested")
PLOTTABLE = ("equivalence", "fig1", "stacks_clipping", "family_sensitivity", "rivals", "asgc", "epsilon",
             "threshold_grid", "bettercnn_divergence", "convex_hdm", "contested") + tuple(
    f"grid_{g}" for g in GRIDS)
BENCHES = ("step", "grid", "rivals", "denormal")


def script(folder: str, name: str) -> Path:
    """The checkout's script ``<folder>/<name>.py``, looked for from the working directory up
    (as git finds its repository), never from where the package is installed."""
    here = Path.cwd().resolve()
    for root in (here, *here.parents):
        path = root / folder / f"{name}.py"
        if path.exists():
            return path
    raise SystemExit(f"hdrepro: {folder}/{name}.py not found in {here} or above: this "
                     "subcommand runs the repository's scripts; run it inside a checkout of "
                     "hdrepro (git clone …; pip install -e .)")


def run_script(path: Path, args: list[str]) -> NoReturn:
    """Become the driver (exec): the process that was `hdrepro` is now the driver, with its pid,
    so a kill of the command stops the driver itself, and the driver's workers die with it."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, str(path), *args])


def _json_object(flag: str, text: str) -> dict:
    """A command-line JSON object, or a one-line error naming the flag and the form it takes."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{flag} {text!r} is not JSON ({e.msg}); write an object such as "
                         "'{\"noise_scale\": 0.1}'") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} {text!r} must be a JSON object of option names and values, "
                         "such as '{\"noise_scale\": 0.1}'")
    return value


def train_command(args: argparse.Namespace) -> int:
    from .engine.data import DataConfig, default_data_root, load
    from .engine.memory import keep_large_blocks
    from .methods.registry import OptimConfig
    from .engine.train import TrainConfig, train
    keep_large_blocks()   # as the studies' workers run: evaluation without page faults
    data_cfg = DataConfig(args.data, args.fraction)
    optim = OptimConfig(args.optimizer, args.lr, args.hypergrad_lr, args.hyper_hypergrad_lr,
                        rule=args.rule, momentum=args.momentum, weight_decay=args.weight_decay,
                        options=tuple(_json_object("--options", args.options).items()))
    cfg = TrainConfig(args.model, data_cfg, optim, args.epochs, args.batch_size, seed=args.seed,
                      device=args.device, progress=not args.no_progress)
    result = train(cfg, load(data_cfg, args.root or default_data_root()))
    f = result.final
    alpha = result.iterations[-1]["alpha"] if result.iterations else float("nan")
    print(f"{args.model} {optim.label} α₀={args.lr:g}: "
          + ("diverged at iteration " + str(f["diverged_at"]) if f["diverged"] else
             f"final train loss {f['train_loss']:.4f}, val loss {f['val_loss']:.4f}, "
             f"test error {100 * f['test_error']:.2f}%, α_T {alpha:.3g}")
          + f" ({f['seconds']:.1f} s)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"config": result.config, "provenance": result.provenance,
                                        "final": f, "epochs": result.epochs},
                                       indent=1, default=str) + "\n")
        print(f"wrote {args.out}")
    return 1 if f["diverged"] else 0


def _train_parser(sub) -> None:
    from .engine.data import NAMES
    from .engine.models import MODELS
    from .optim import RULES
    t = sub.add_parser("train", help="one training run",
                       formatter_class=HelpFormatter,
                       description="Train one model with one optimizer and print (and save) its "
                       "final numbers. Optimizer names: sgd, sgdn, adam, any hdrepro.methods.family "
                       "name (momentum, nesterov, adagrad, adadelta, rmsprop, …), sgd-hd, "
                       "sgdn-hd, adam-hd, hd-<family name>, asgc-<family name>, hdm, "
                       "hdm-scalar (--hypergrad-lr is HDM's η), marthe (--hypergrad-lr is its "
                       "β; --options '{\"mu\": 1.0}' for RTHO, automatic μ by default), "
                       "prodigy, dadapt-adam, schedulefree-adamw, dog, "
                       "stack:<primary>/<secondary>.")
    t.add_argument("--model", choices=sorted(MODELS), default="mlnn", help="the network")
    t.add_argument("--data", choices=NAMES, default="mnist", help="the data set")
    t.add_argument("--fraction", type=float, default=1.0, help="share of the data set used")
    t.add_argument("--optimizer", default="adam-hd", help="its name (see above)")
    t.add_argument("--lr", type=float, default=1e-3, help="α₀")
    t.add_argument("--hypergrad-lr", type=float, default=1e-7, help="β")
    t.add_argument("--hyper-hypergrad-lr", type=float, default=0.0, help="γ")
    t.add_argument("--rule", choices=RULES, default="additive",
                   help="how h_t updates α: additive (α − β h_t) or multiplicative")
    t.add_argument("--momentum", type=float, default=0.9, help="μ for the momentum variants")
    t.add_argument("--weight-decay", type=float, default=1e-4, help="L2 penalty λ")
    t.add_argument("--options", default="{}",
                   help='further optimizer arguments as JSON, e.g. \'{"eps": 1e-6}\'')
    t.add_argument("--epochs", type=int, default=1, help="passes over the training set")
    t.add_argument("--batch-size", type=int, default=128, help="examples per step")
    t.add_argument("--seed", type=int, default=1, help="initialisation and shuffling")
    t.add_argument("--device", default="auto", help="cpu, cuda, … (auto: CUDA if present)")
    t.add_argument("--root", type=Path, default=None, help=DATA_HELP)
    t.add_argument("--out", type=Path, default=None, help="write the run as JSON here")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=train_command)


def _forwarding(sub, name: str, help: str, choices=None):
    """A subcommand whose remaining arguments go to a driver script (its --help too)."""
    p = sub.add_parser(name, help=help, add_help=False, description=help + (
        "; the options after NAME go to it (NAME --help lists them)" if choices else
        "; every option goes to it (--help lists them)"))
    if choices:
        p.add_argument("target", nargs="?", choices=choices, metavar="NAME",
                       help=f"one of: {', '.join(choices)}")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the driver's options (see its --help)")
    return p


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hdrepro", description="Hypergradient descent, "
                                 "reproduced: every experiment, benchmark and report of hdrepro.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[3:13]))
    sub = ap.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    ap.subcommands = sub.choices
    _train_parser(sub)
    drivers = (  # subcommand, help, choices, script folder, script name, options put first
        ("grid", "a grid of the reproducibility report (experiments/grid_NAME.py)", GRIDS,
         "experiments", "grid_{}", ()),
        ("stacks", "the clipping report's tables (experiments/stacks_clipping.py)", None,
         "experiments", "stacks_clipping", ()),
        ("run", "another experiment driver (experiments/NAME.py)", EXPERIMENTS, "experiments",
         "{}", ()),
        ("plot", "redraw an experiment's figures from saved results (its driver with "
         "--plot-only)", PLOTTABLE, "experiments", "{}", ("--plot-only",)),
        ("bench", "a benchmark (bench/bench_NAME.py)", BENCHES, "bench", "bench_{}", ()))
    for name, text, choices, folder, pattern, first in drivers:
        _forwarding(sub, name, text, choices).set_defaults(
            func=_driver(folder, pattern, first))
    _forwarding(sub, "report", "write a report and its pages from saved results (hdrepro.report)"
                ).set_defaults(func=lambda a: _library("report", a.rest))
    _forwarding(sub, "data", "fetch, describe or verify the data sets (hdrepro.engine.data)"
                ).set_defaults(func=lambda a: _library("data", a.rest))
    return ap


def _driver(folder: str, pattern: str, first: tuple[str, ...]):
    def go(args: argparse.Namespace) -> int:
        name = pattern.format(getattr(args, "target", ""))
        return run_script(script(folder, name), [*first, *args.rest])
    return go


def _library(module: str, rest: list[str]) -> int:
    if module == "data":
        from .engine.data import main
    else:   # the report needs the experiments extra
        from .report import main
    return int(main(rest) or 0)


def glue_negative_numbers(argv: list[str]) -> list[str]:
    """``--flag -1e-3`` as ``--flag=-1e-3``: argparse takes a value such as -1e-3 (scientific
    notation) for an option and reports "expected one argument"; glued, the value reaches the
    option's own check, which says what is wrong with it."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        flag, value = argv[i], argv[i + 1] if i + 1 < len(argv) else None
        if flag.startswith("--") and "=" not in flag and value and value.startswith("-") \
                and _is_number(value):
            out.append(f"{flag}={value}")
            i += 2
        else:
            out.append(flag)
            i += 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main(argv=None) -> int:
    argv = glue_negative_numbers(sys.argv[1:] if argv is None else list(argv))
    ap = parser()
    args, unknown = ap.parse_known_args(argv)
    if getattr(args, "target", "") is None:   # `hdrepro grid` or `hdrepro grid --help`
        ap.subcommands[args.command].print_help()
        return 0 if {"-h", "--help"} & set(unknown) else 2
    if unknown and args.command == "train":
        ap.error(f"unrecognized arguments: {' '.join(unknown)} (see hdrepro train --help)")
    if unknown:   # options placed before the forwarded ones (argparse REMAINDER quirk)
        args.rest = [*unknown, *args.rest]
    try:
        try:
            return args.func(args)
        except ModuleNotFoundError as e:   # a light install (torch and numpy only)
            raise missing_extra(e, f"hdrepro {args.command}") from None
    except EXPECTED_ERRORS as e:   # bad values, data not fetched, a store in use: say which
        ap.subcommands[args.command].error(str(e))


if __name__ == "__main__":
    sys.exit(main())
