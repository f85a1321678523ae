"""Where cells run, and how their results reach a store: in this process, in local worker
processes, or on a Dask cluster (:class:`RunOptions`). :func:`run_pending` runs the cells a store
does not hold yet, at most a window of them in flight, appending each task's rows as it returns,
so that a killed run loses only what was in flight and a rerun skips what is stored; worker
processes die with their parent. Workers load their data once (:func:`worker_data`) and record
the device and data they ran on (:func:`provenance_columns`).
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import multiprocessing
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm

from ..config import check_fields
from .data import DataConfig, load
from .memory import keep_large_blocks
from .results import GridStore, RunStore
from .train import resolve_device

EXECUTORS = ("inprocess", "processes", "dask")


@dataclass(frozen=True)
class RunOptions:
    """How to run a grid (not what): executor, parallelism, batching, device, data folder."""
    data_root: str
    executor: str = "inprocess"
    workers: int = 2
    scheduler: str | None = None     # address of a running Dask scheduler; None: a LocalCluster
    batch: int | None = None         # cells trained together; 0: one at a time through
    #                                  train(); None: auto_batch(model, device)
    device: str = "auto"
    threads: int | None = None       # torch threads per worker (None: torch's default)
    progress: bool = True

    def __post_init__(self):
        check_fields(self)
        if self.executor not in EXECUTORS:
            raise ValueError(f"Unknown executor {self.executor!r}; choose one of {EXECUTORS}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None (got {self.threads})")
        if self.workers < 1 or (self.batch is not None and self.batch < 0):
            raise ValueError(f"workers must be >= 1 and batch >= 0 (got {self.workers}, "
                             f"{self.batch})")
        if self.scheduler and self.executor != "dask":
            raise ValueError("--scheduler needs --executor dask")


@functools.lru_cache(maxsize=2)
def worker_data(config: DataConfig, root: str):
    """The data set a worker trains on, loaded once per worker process and kept (the last two
    configurations): a worker's cells mostly share one."""
    return load(config, Path(root))


def worker_device(device: str, threads: int | None) -> str:
    """In a worker: keep large freed blocks for reuse (:mod:`.memory`), set torch's threads
    (when given) and resolve the device name."""
    keep_large_blocks()
    if threads:
        torch.set_num_threads(threads)
    return str(resolve_device(device))


def provenance_columns(device: str, data) -> dict:
    """What every stored row says of where it ran and on what data."""
    return {"device": _device_name(device), "n_train": len(data.train),
            "n_test": len(data.test), "data_source": data.provenance.get("source", "")}


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({torch.get_num_threads()} threads)"


class InProcessExecutor(cf.Executor):
    """The concurrent.futures interface, running each task at submit() in this process."""

    def submit(self, fn, /, *args, **kwargs):
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(e)
        return future


def die_with_parent(parent: int, poll_s: float = 0.5) -> None:
    """In a worker process: exit as soon as `parent` is gone (the worker is re-parented)."""
    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)
    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


@contextlib.contextmanager
def open_executor(options: RunOptions) -> Iterator[cf.Executor]:
    """A concurrent.futures.Executor for ``options.executor``."""
    if options.executor == "inprocess":
        yield InProcessExecutor()
    elif options.executor == "processes":
        # spawn, not fork: safe with CUDA and with torch's thread pools. Each worker watches its
        # parent: a driver killed by SIGKILL runs no shutdown, and its workers would live on.
        with cf.ProcessPoolExecutor(options.workers,
                                    mp_context=multiprocessing.get_context("spawn"),
                                    initializer=die_with_parent, initargs=(os.getpid(),)) as ex:
            yield ex
    else:
        try:
            from distributed import Client, LocalCluster
        except ImportError as e:
            raise ImportError("--executor dask needs dask.distributed: pip install distributed"
                              ) from e
        if options.scheduler:
            client = Client(options.scheduler)
        else:
            client = Client(LocalCluster(n_workers=options.workers, threads_per_worker=1,
                                         processes=True, dashboard_address=None))
        try:
            yield client.get_executor()
        finally:
            client.close()
            if not options.scheduler:
                client.cluster.close()


def worker_threads(options: RunOptions) -> int | None:
    """torch threads per worker: the machine's cores shared among the workers."""
    if options.threads is None and options.executor != "inprocess":
        return max(1, torch.get_num_threads() // options.workers)
    return options.threads


def run_work(work: list[tuple], fn: Callable, store: GridStore | RunStore, options: RunOptions,
             total: int, desc: str) -> None:
    """Run fn(task) for each task (a tuple of cells) on the executor of `options`, appending the
    rows of each to `store` as soon as it returns, with a progress bar over all `total` cells."""
    bar = tqdm(total=total, initial=total - sum(map(len, work)), disable=not options.progress,
               desc=desc, unit="cell")
    with open_executor(options) as ex:
        window = 1 if options.executor == "inprocess" else 2 * options.workers
        for rows in _as_finished(ex, fn, work, window):
            store.append(rows)
            bar.update(len(rows))
    bar.close()


def run_pending(cells: list, fn: Callable, store: GridStore | RunStore, options: RunOptions,
                desc: str, redo: frozenset = frozenset()) -> None:
    """Run ``fn(cells, device, data_root, threads)`` on each cell not yet in `store`, and on
    those whose ids are in `redo` (stored ones rerun on purpose: a RunStore replaces each as its
    rerun ends), one cell per task, on the executor of `options` (the runner of Figure 1, the
    stacks and the extension experiments). `fn` returns what ``store.append`` takes. The store's
    writer lock is held throughout, as in :func:`run_grid`."""
    with store.writing():
        done = store.finished() - redo
        todo = [(c,) for c in cells if c.cell_id not in done]
        if todo:
            submit = functools.partial(fn, device=options.device, data_root=options.data_root,
                                       threads=worker_threads(options))
            run_work(todo, submit, store, options, len(cells), desc)


def _as_finished(ex: cf.Executor, fn: Callable, work: list, window: int) -> Iterator:
    """Yield fn(task) results as they finish, keeping at most `window` tasks in flight, so that
    every result is stored before more work is started (a kill loses only what is in flight)."""
    pending: set[cf.Future] = set()
    todo = iter(work)

    def fill():
        for task in todo:
            pending.add(ex.submit(fn, task))
            if len(pending) >= window:
                return

    fill()
    try:
        while pending:
            finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for f in finished:
                pending.discard(f)
                yield f.result()
            fill()
    finally:
        for f in pending:
            f.cancel()


def git_commit(repo: Path | None = None) -> str:
    """The repository's commit, for provenance ('unknown' outside a git checkout), with
    "+changes" when tracked files differ from it: the code that ran was not that commit.
    HDREPRO_COMMIT, when set, wins: a copy of the tree sent to another machine (the GPU runs of
    scripts/device_full_grids.sh) can carry a git folder older than the files that run."""
    if os.environ.get("HDREPRO_COMMIT"):
        return os.environ["HDREPRO_COMMIT"]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "--short", "HEAD") + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
