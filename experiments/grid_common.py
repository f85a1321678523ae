"""What every grid driver (grid_logreg.py, grid_mlnn.py, grid_bettercnn.py, grid_gamma.py) does:
parse the command line, run the profile's grid through hdrepro.studies.grids (resumably), draw its
heatmaps from the stored cells. The drivers only say which grid each profile runs."""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hdrepro.cli_help import DATA_HELP, PROFILE_HELP, HelpFormatter  # noqa: E402
from hdrepro.engine.data import default_data_root  # noqa: E402
from hdrepro.report.figures import FigureOrigin, stamp  # noqa: E402
from hdrepro.engine.executors import EXECUTORS, RunOptions, git_commit  # noqa: E402
from hdrepro.studies.grids import GridRun, GridSpec, panels, run_grid  # noqa: E402
from hdrepro.optim import RULES  # noqa: E402
from hdrepro.engine.models import TITLES as MODEL_TITLES  # noqa: E402
from hdrepro.report.plots import plot_grid  # noqa: E402
from hdrepro.engine.results import GridStore  # noqa: E402
from hdrepro.engine.cells import run  # noqa: E402


class _Parser(argparse.ArgumentParser):
    """Fills the figures folder's default, figures/<profile>, once the profile is known."""

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if parsed.figures is None:
            parsed.figures = Path("figures") / parsed.profile
        return parsed


def run_parser(doc: str, profiles) -> argparse.ArgumentParser:
    """The options every driver that runs cells on hdrepro.studies.grids's executors shares."""
    ap = _Parser(description=doc.split("\n")[0], formatter_class=HelpFormatter)
    ap.add_argument("--profile", choices=sorted(profiles), default="quick", help=PROFILE_HELP)
    ap.add_argument("--out", type=Path, default=None,
                    help="results folder (default results/<profile>)")
    ap.add_argument("--figures", type=Path, default=None,
                    help="figures folder (default figures/<profile>)")
    ap.add_argument("--data", type=Path, default=None, help=DATA_HELP)
    ap.add_argument("--executor", choices=EXECUTORS, default="inprocess",
                    help="where cells run: this process, a local process pool, or Dask")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (processes, dask)")
    ap.add_argument("--scheduler", default=None,
                    help="address of a running Dask scheduler (default: start a LocalCluster)")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, … (auto: CUDA if present)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads per worker (default: torch's own choice)")
    ap.add_argument("--plot-only", action="store_true", help="redraw from the stored cells")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def parser(doc: str, profiles: dict[str, GridSpec]) -> argparse.ArgumentParser:
    ap = run_parser(doc, profiles)
    ap.add_argument("--batch", type=int, default=None,
                    help="cells trained together on one device; 0 = one at a time (default: "
                         "hdrepro.studies.grids.auto_batch, by model and device)")
    ap.add_argument("--rules", nargs="+", choices=RULES, default=None,
                    help="run only these rules of the profile's grid (default: all of them)")
    return ap


def main(doc: str, profiles: dict[str, GridSpec], argv=None) -> None:
    args = parser(doc, profiles).parse_args(argv)
    spec = profiles[args.profile]
    if args.rules:
        spec = dataclasses.replace(spec, rules=tuple(args.rules))
    out = args.out or Path("results") / args.profile
    store = GridStore(out / f"grid_{spec.name}.jsonl")
    if not args.plot_only:
        options = dataclasses.replace(run_options(args, args.data or default_data_root()),
                                      batch=args.batch)
        run = out / f"grid_{spec.name}_run.json"
        axes = dataclasses.asdict(spec.axes())
        t0 = time.perf_counter()

        def record(plan: GridRun, finished: bool = False) -> None:
            # written before the run too, so that a grid cut off still says what it expects
            write_run_info(run, t0, plan.cells, args, cells_run=plan.ran, finished=finished,
                           batch=plan.batch, axes=axes)

        with store.writing():   # one writer: a refused second run must not touch the record
            record(run_grid(spec, store, options, before=record), finished=True)
    stamp_figures(draw(store, spec, args.figures), f"grid_{spec.name}", args, out)


def draw(store: GridStore, spec: GridSpec, figures: Path) -> list[Path]:
    """One figure per rule: a heatmap per HD optimizer (and per γ), from the stored cells."""
    frame = store.frame()
    frame = frame[frame.cell_id.isin({c.cell_id for c in spec.cells()})]
    written = []
    all_panels = panels(frame, axes=spec.axes())
    for rule, so in [(r, s) for r in spec.rules for s in spec.second_orders]:
        ps = [p for p in all_panels if p.rule == rule and p.second_order == so]
        if not ps:
            continue
        fig, axes = plt.subplots(1, len(ps), figsize=(0.75 * len(spec.alphas) * len(ps) + 2.5,
                                                      0.45 * len(spec.betas) + 2.2),
                                 squeeze=False)
        for p, ax in zip(ps, axes[0]):
            plot_grid(p, ax)
        seeds = frame.seed.nunique()
        fig.suptitle(f"{MODEL_TITLES.get(spec.model, spec.model)}, {spec.data.name} "
                     f"{spec.data.fraction:.0%}, {spec.epochs} epochs, {seeds} seed(s): final-epoch "
                     f"mean training loss (red: worse than the base optimizer at the same α₀; "
                     f"blank: diverged; grey, hatched: not stored)", fontsize=9)
        suffix = ("" if rule == "additive" else f"_{rule}") + \
            ("" if so == "derived" else f"_{so}")
        written.append(save_figure(fig, figures, f"grid_{spec.name}{suffix}.png"))
    return written


def save_figure(fig, figures: Path, name: str, rect=(0, 0, 1, 1)) -> Path:
    """Lay out (titles wrapped to the width they have, panels inside `rect` of the figure),
    write figures/<name> (the folder made if need be) and close the figure."""
    wrap_titles(fig)
    fig.tight_layout(rect=rect)
    figures.mkdir(parents=True, exist_ok=True)
    path = figures / name
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def wrap_titles(fig) -> None:
    """Wrap the figure's title and each panel's title to the width it is drawn in, so that a
    narrow figure (one model, the smoke profile) never cuts a title off at its edges."""
    import textwrap
    width = fig.get_figwidth() * 72    # points
    titles = [(fig._suptitle, width)] if fig._suptitle is not None else []
    titles += [(ax.title, ax.get_position().width * width) for ax in fig.axes]
    for title, room in titles:
        text = title.get_text()
        chars = max(20, int(room / (0.55 * title.get_fontsize())))
        if text and any(len(line) > chars for line in text.split("\n")):
            title.set_text("\n".join(textwrap.fill(line, chars) for line in text.split("\n")))


def stamp_figures(paths, driver: str, args, out: Path) -> None:
    """Stamp each figure a driver wrote with its origin (hdrepro.report.figures), and say so."""
    made = FigureOrigin.of_driver("plot", driver, args.profile, out, args.figures)
    for path in paths:
        print(f"wrote {stamp(path, made)}")


def run_options(args, root: Path) -> RunOptions:
    """The executor options of a run_parser command line."""
    return RunOptions(str(root), executor=args.executor, workers=args.workers,
                      scheduler=args.scheduler, device=args.device, threads=args.threads,
                      progress=not args.no_progress)


def write_run_info(path: Path, t0: float, cells: int, args, *, cells_run: int | None = None,
                   finished: bool = True, **extra) -> None:
    """The run's provenance beside its results: wall time, cells (in the profile, and run by
    this invocation), whether it finished, executor, device, commit."""
    info = {"wall_s": time.perf_counter() - t0 if finished else None, "cells_total": cells,
            **({} if cells_run is None else {"cells_run": cells_run}), "finished": finished,
            "executor": args.executor, "workers": args.workers, "device": args.device,
            "commit": git_commit(), **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=1) + "\n")


def study_main(doc: str, profiles: dict, name: str, desc: str, draw, argv=None) -> None:
    """A study driver's whole main: parse, run the profile's cells (:func:`run_study`) unless
    --plot-only, then ``draw(store, spec, figures)`` and stamp the figure."""
    args = run_parser(doc, profiles).parse_args(argv)
    spec = profiles[args.profile]
    out = args.out or Path("results") / args.profile
    store = GridStore(out / f"{name}.jsonl")
    if not args.plot_only:
        run_study(args, out, name, spec.cells(), store, desc)
    stamp_figures([draw(store, spec, args.figures)], name, args, out)


def run_study(args, out: Path, name: str, cells: list, store: GridStore, desc: str) -> None:
    """Run a study's cells (any :class:`hdrepro.engine.cells.Cell`) not yet in `store` as its
    one writer, recording the invocation in ``<out>/<name>_run.json`` before (unfinished) and
    after."""
    with store.writing():   # one writer per store, its run record included
        t0, todo = begin_run_info(out / f"{name}_run.json", cells, store, args)
        run(cells, store, run_options(args, args.data or default_data_root()), desc)
        write_run_info(out / f"{name}_run.json", t0, len(cells), args, cells_run=todo)


def begin_run_info(path: Path, cells: list, store, args, *, later: int = 0,
                   **extra) -> tuple[float, int]:
    """Record an invocation before it runs, marked unfinished, so that one cut off (a timeout,
    a crash) still says how many cells the profile has; return (t0, cells still to run).
    `store` is a GridStore or RunStore holding this driver's cells only; `later` counts cells
    the run adds once earlier ones are done (ASGC's ablations, chosen after tuning): stored
    cells outside `cells` are taken to be those. `extra` goes into the record as it is."""
    ids, done = {c.cell_id for c in cells}, store.finished()
    todo = len(ids - done) + max(later - len(done - ids), 0)
    t0 = time.perf_counter()
    write_run_info(path, t0, len(cells) + later, args, cells_run=todo, finished=False, **extra)
    return t0, todo
