"""The clipping report's Tables 1-5: stacks <primary>/SGD(α) with and without norm-based averaged
clipping of the hypergradients, the ablations (pseudo-code clipping, a halved α), and the
hypergradient norms of one large-α run.

Claim (hypergradient-clipping report, §4): clipping barely matters at small secondary α and
mitigates the blow-up at large α (by a few points to ~80 points of test error).
Setup (the report; docs/report/setups.md): MNIST (60,000/10,000, pixels in [0, 1] as in Chandra et
al.'s example), the 784-128-10 tanh MLP with tanh
on the output too (and, ours, once without it), batch 256; SGD/SGD and AdaGrad/SGD 30 epochs,
Adam/SGD and RMSProp/SGD 5 epochs; primaries at the report's defaults with Chandra et al.'s
package conventions (every hyperparameter of the primary learned); the secondary SGD without
momentum over each table's α; mean test error over 3 trials. Table 5: Adam/SGD on the report's
CNN for 5 epochs, on CIFAR-10 when present, else on Fashion-MNIST (labelled as such).
Profiles: smoke two α of Adam/SGD and one of the CNN on 2% of the data, 1 epoch (seconds); quick
3-4 α per table (where clipping matters in the report), 1 trial, the CNN on 10% of its data
(~10 min on 2 cores); full every α of the five tables, 3 trials (10 on the rows a verdict
reads, where the report's clipping helped or had no effect, and on the ablations' rows, MNIST
tables), all data. Adam/SGD (quick; and
RMSProp/SGD in full) also runs with standardised MNIST inputs, to show what the input scale does.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from grid_common import (begin_run_info, run_parser, save_figure, stamp_figures,  # noqa: E402
                         write_run_info)

from hdrepro.cli_help import run_main  # noqa: E402
from hdrepro.engine.data import DataConfig, default_data_root  # noqa: E402
from hdrepro.engine.executors import RunOptions  # noqa: E402
from hdrepro.report.plots import plot_clip_trace, plot_stack_table  # noqa: E402
from hdrepro.engine.results import GridStore  # noqa: E402
from hdrepro.studies.stacks import (PUBLISHED, STAND_IN, StackCell, StackSpec, baseline_error,
                                    comparison, run, single_trials, trace)  # noqa: E402


@dataclass(frozen=True)
class Profile:
    spec: StackSpec
    image_fraction: float     # of CIFAR-10 or Fashion-MNIST for Table 5
    trace_epochs: int         # the mechanism plot's run


TRACE = ("adam", 1e-2)  # Table 2's row where the report's clipping helps most (79.6% -> 23.2%)
PROFILES = {
    "smoke": Profile(StackSpec(("adam", "cnn"), seeds=(1,), nets=("output-tanh",),
                               alphas={"adam": (1e-3, 1e-2), "cnn": (1e-4,)},
                               mnist=DataConfig("mnist", 0.02), epochs={"adam": 1, "cnn": 1}),
                     0.02, 1),
    "quick": Profile(StackSpec(tuple(PUBLISHED), seeds=(1,),
                               alphas={"sgd": (10, 50, 100), "adagrad": (1, 5, 50),
                                       "adam": (1e-4, 1e-3, 5e-3, 1e-2),
                                       "rmsprop": (1e-3, 1e-2, 2.5e-2, 5e-2),
                                       "cnn": (1e-6, 1e-4, 1e-3)},
                               standardised=("adam",)),
                     0.1, 1),
    # 3 trials everywhere, as the report ran; 10 where a verdict turns on a difference (at 3 or
    # 5, many rows were inconclusive: their trials' spread exceeded the difference)
    "full": Profile(StackSpec(tuple(PUBLISHED), standardised=("adam", "rmsprop"),
                              decisive_seeds=tuple(range(4, 11))), 1.0, 5),
}
TITLES = {"sgd": "SGD/SGD(α)", "adam": "Adam/SGD(α)", "adagrad": "AdaGrad/SGD(α)",
          "rmsprop": "RMSProp/SGD(α)", "cnn": "Adam/SGD(α), CNN"}
NET_TITLES = {"output-tanh": "the report's net (tanh on the output)",
              "no-output-tanh": "without the output tanh"}


def image_data(root: Path, fraction: float) -> DataConfig:
    """CIFAR-10 when its files are in the data folder, else Fashion-MNIST (never called CIFAR)."""
    name = "cifar10" if (root / "cifar10" / "manifest.json").exists() else "fashion-mnist"
    return DataConfig(name, fraction)


def main(argv=None) -> None:
    ap = run_parser(__doc__, PROFILES)
    ap.add_argument("--tables", nargs="+", choices=sorted(PUBLISHED), default=None,
                    help="run only these of the profile's tables (default: all of them)")
    args = ap.parse_args(argv)
    prof = PROFILES[args.profile]
    root = args.data or default_data_root()
    spec = replace(prof.spec, image=image_data(root, prof.image_fraction))
    if args.tables:
        spec = replace(spec, tables=tuple(t for t in spec.tables if t in args.tables))
    out = args.out or Path("results") / args.profile
    store = GridStore(out / "stacks_clipping.jsonl")
    if not args.plot_only:
        with store.writing():   # one writer per store, its run record included
            options = RunOptions(str(root), executor=args.executor, workers=args.workers,
                                 scheduler=args.scheduler, device=args.device,
                                 threads=args.threads, progress=not args.no_progress)
            record = out / "stacks_clipping_run.json"
            before = len(store.finished())
            # the ablations are chosen once the tables have run: counted as the stored rows
            # call for now (exact once the tables are complete)
            later = len(spec.ablation_cells(store.frame())) if len(store.finished()) else 0
            t0, _ = begin_run_info(record, spec.cells(), store, args, later=later,
                                   image_data=spec.image.name)
            frame = run(spec, store, options)
            write_run_info(record, t0, len(frame), args, cells_run=len(frame) - before,
                           image_data=spec.image.name)
            write_trace(spec, prof, root, out, args.device)
    stamp_figures(draw(store.frame(), spec, out, args.figures), "stacks_clipping", args, out)


def write_trace(spec: StackSpec, prof: Profile, root: Path, out: Path, device: str) -> None:
    """|h_t|, θ_t and α_t of one large-α Adam/SGD run, without and with clipping."""
    table, alpha = TRACE
    cell = StackCell(table, "output-tanh", "none", alpha, 1, prof.trace_epochs, spec.mnist)
    frames = [trace(replace(cell, variant=v), str(root), device).assign(run=v)
              for v in ("none", "clip")]
    pd.concat(frames).to_csv(out / "stacks_trace.csv", index=False)


def draw(frame: pd.DataFrame, spec: StackSpec, out: Path, figures: Path) -> list[Path]:
    written = []
    for table in spec.tables:
        if frame.empty or table not in set(frame.table):
            continue  # nothing stored for it yet: no empty figure
        nets = spec.nets_of(table)
        fig, axes = plt.subplots(1, len(nets), figsize=(max(7.0, 5 * len(nets)), 4.0), squeeze=False)
        for net, ax in zip(nets, axes[0]):
            base = {"ours": baseline_error(frame, table, net),
                    "report": PUBLISHED[table].baseline / 100 if net == "output-tanh" else None}
            plot_stack_table(comparison(frame, table, net), ax, base, NET_TITLES[net],
                             single_trials(frame, table, net))
        axes[0, 0].legend(fontsize=7)
        pub = PUBLISHED[table]
        data = spec.image if table == STAND_IN else spec.mnist
        seeds = frame[frame.table == table].seed.nunique() if len(frame) else 0
        fig.suptitle(f"Table {pub.number}: {TITLES[table]} on {data.name} "
                     f"({data.fraction:.0%}), {spec.epochs.get(table, pub.epochs)} epochs, "
                     f"{seeds} trial(s)\nthe report's points: {pub.dataset}, 3 trials", fontsize=9)
        written.append(save_figure(fig, figures, f"stacks_{table}.png"))
    trace_csv = out / "stacks_trace.csv"
    if trace_csv.exists():
        tr = pd.read_csv(trace_csv)
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.4))
        plot_clip_trace(tr, a, b)
        fig.suptitle(f"Adam/SGD(α = {TRACE[1]:g}), the report's net: the hypergradient of Adam's "
                     "α and the clipping threshold", fontsize=9)
        written.append(save_figure(fig, figures, "stacks_trace.png"))
    return written


if __name__ == "__main__":
    run_main(main)
