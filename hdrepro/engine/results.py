"""Tidy, resumable results: training runs as CSV rows appended run by run (RunStore), grid cells
as JSON lines appended cell by cell (GridStore).

Each store has one writer at a time: :meth:`GridStore.writing` (and ``RunStore.writing``) holds an
advisory lock (``fcntl.flock`` on ``<store>.lock``, which records the holder's pid and command)
for a whole run, and every append takes it too. A second writer is refused with
:class:`StoreLocked`, naming the holder; the lock dies with its process, so a lock left by a
killed run is simply taken over. Readers never lock.

A run's iteration and epoch rows are appended first and its one "final" row last, each in a
single flushed write, so a run counts as finished exactly when its final row is on disk. A rerun
skips finished runs; rows left by a run that crashed before its final row are dropped when read
(``load`` keeps, per run and step, only the last row written). In both stores a line torn by a
kill inside a write is never read, and is cut off (under the lock) before the next append.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

import pandas as pd

from ..errors import StoreLocked

KINDS = ("iterations", "epochs", "final")
KEYS = {"iterations": ["run_id", "iteration"], "epochs": ["run_id", "epoch"],
        "final": ["run_id"]}


class RunStore:
    """Rows of many runs under ``<folder>/<name>_{iterations,epochs,final}.csv``."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name = Path(folder), name
        self.lock = WriterLock(self.folder / f"{name}.lock")

    def writing(self) -> contextlib.AbstractContextManager:
        """Hold the store's writer lock for a whole run (refused with StoreLocked if taken)."""
        return self.lock.held()

    def path(self, kind: str) -> Path:
        return self.folder / f"{self.name}_{kind}.csv"

    def finished(self) -> set[str]:
        text = whole_lines(self.path("final"))
        return {row["run_id"] for row in csv.DictReader(io.StringIO(text))}

    def append(self, runs: list[tuple[str, dict, object]]) -> None:
        """Write finished runs, each a (run_id, labels, RunResult): its iteration rows, epoch rows,
        then its final row. A run already stored (rerun on purpose) replaces every row of the
        earlier one. (The same call as GridStore.append, so that hdrepro.studies.grids's
        executors can store either.)"""
        with self.lock.held():
            self.drop({run_id for run_id, _, _ in runs} & self.finished())
            for run_id, labels, result in runs:
                self._append_run(run_id, labels, result)

    def _append_run(self, run_id: str, labels: dict, result) -> None:
        meta = {"run_id": run_id, **labels}
        final = {**meta, **result.final, "provenance": json.dumps(result.provenance),
                 "config": json.dumps(result.config, default=str)}
        for kind, rows in (("iterations", result.iterations), ("epochs", result.epochs),
                           ("final", [final])):
            self._append_rows(kind, [{**meta, **r} for r in rows])

    def _append_rows(self, kind: str, rows: list[dict]) -> None:
        if not rows:
            return
        path = self.path(kind)
        self.folder.mkdir(parents=True, exist_ok=True)
        cut_torn_tail(path)
        new = not path.exists() or path.stat().st_size == 0
        wanted = list(dict.fromkeys(k for r in rows for k in r))
        if not new:
            with path.open() as f:
                fields = next(csv.reader(f))
            if set(wanted) - set(fields):  # a column added since: never drop it silently
                fields = self._widen(path, fields, wanted)
        else:
            fields = wanted
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerows(rows)
        with path.open("a") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())

    def drop(self, run_ids: set[str]) -> None:
        """Remove every row of `run_ids`. Final rows go first: a kill part way leaves those runs
        unfinished, and load() ignores an unfinished run's rows."""
        if not run_ids:
            return
        with self.lock.held():
            for kind in ("final", "iterations", "epochs"):
                path = self.path(kind)
                if not path.exists():
                    continue
                rows = csv.DictReader(io.StringIO(whole_lines(path)))
                kept = [r for r in rows if r["run_id"] not in run_ids]
                if rows.fieldnames:
                    self._rewrite(path, rows.fieldnames, kept)

    @staticmethod
    def _rewrite(path: Path, fields: list[str], rows: list[dict]) -> None:
        """Replace `path` by `rows` under `fields`, atomically (a temporary file, fsync'd, then
        renamed over it)."""
        tmp = path.with_name(path.name + ".rewrite")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @staticmethod
    def _widen(path: Path, fields: list[str], wanted: list[str]) -> list[str]:
        """Rewrite `path` with the columns of `wanted` that its header lacks (empty in the rows
        already there), atomically, under the writer's lock; return the new header."""
        fields = fields + [k for k in wanted if k not in fields]
        RunStore._rewrite(path, fields, list(csv.DictReader(io.StringIO(whole_lines(path)))))
        return fields

    def load(self, kind: str) -> pd.DataFrame:
        text = whole_lines(self.path(kind))
        if not text:
            return pd.DataFrame()
        df = pd.read_csv(io.StringIO(text))
        finished = self.finished()
        df = df[df["run_id"].isin(finished)]
        return df.drop_duplicates(KEYS[kind], keep="last").reset_index(drop=True)


class GridStore:
    """One JSON line per finished grid cell, in ``<path>`` (a ``.jsonl`` file).

    Rows are written only by the process that holds the store's writer lock (the one that drives
    the grid), each as one ``os.write`` of a whole line to a file opened in append mode, then
    fsync'd: a kill at any moment loses at most the cells in flight. A torn last line (a line
    without its newline, left by a kill inside the write or a full disk) is ignored when read
    and cut off, under the lock, before the next append.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = WriterLock(self.path.with_name(self.path.name + ".lock"))

    def writing(self) -> contextlib.AbstractContextManager:
        """Hold the store's writer lock for a whole run (refused with StoreLocked if taken)."""
        return self.lock.held()

    def rows(self) -> list[dict]:
        rows = []
        for line in whole_lines(self.path).splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line garbled by a crash on another filesystem: skip, never guess
        return rows

    def finished(self) -> set[str]:
        return {r["cell_id"] for r in self.rows()}

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        with self.lock.held():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            cut_torn_tail(self.path)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                for row in rows:
                    os.write(fd, (json.dumps(row, sort_keys=True) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    def frame(self) -> pd.DataFrame:
        """All finished cells, one row each (the last written, if a cell was stored twice)."""
        df = pd.DataFrame(self.rows())
        if df.empty:
            return df
        return df.drop_duplicates("cell_id", keep="last").reset_index(drop=True)


def completeness(folder: Path) -> list[tuple[str, int, int]]:
    """(store, runs stored, runs expected) for every store in `folder` whose driver recorded how
    many runs it expects (``<store>_run.json``, field ``cells_total``). A store is a GridStore
    ``<store>.jsonl`` or a RunStore ``<store>_final.csv``."""
    out = []
    for run in sorted(Path(folder).glob("*_run.json")):
        name = run.name[:-len("_run.json")]
        expected = json.loads(run.read_text()).get("cells_total")
        if expected is None:
            continue
        grid = Path(folder) / f"{name}.jsonl"
        stored = GridStore(grid).finished() if grid.exists() else RunStore(folder, name).finished()
        out.append((name, len(stored), int(expected)))
    return out


def has_results(folder: Path) -> bool:
    """Whether `folder` holds any stored result (a store, a run record or a CSV of results)."""
    folder = Path(folder)
    return folder.is_dir() and any(p.stat().st_size > 0 for pattern in ("*.jsonl", "*.csv")
                                   for p in folder.glob(pattern))


def whole_lines(path: Path) -> str:
    """The file's text up to its last newline ("" when absent): a torn last line is not read."""
    if not path.exists():
        return ""
    text = path.read_text()
    return text[:text.rfind("\n") + 1]


def cut_torn_tail(path: Path) -> None:
    """Cut off whatever follows the last newline: a line torn by a kill inside a write (or a full
    disk), which the next append would otherwise glue to its first row."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        data = f.read()
        if not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


class WriterLock:
    """An exclusive, re-entrant advisory lock on a lock file, for one writer per store.

    ``fcntl.flock`` belongs to the open file, so the kernel drops it when its process dies, however
    it dies: a lock file left by a killed writer holds nothing and is taken over as it stands. The
    file records the holder (pid, host, command, start) for the refusal message only. Re-entrant
    within one lock object (a run holds it while each append takes it again); two lock objects on
    one file in one process exclude each other like two processes would.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None
        self._depth = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> None:
        if self._depth:
            self._depth += 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _wait_for_holder(fd)
            os.close(fd)
            raise StoreLocked(f"{self.path.with_suffix('')} is being written by {holder}; wait "
                              "for that run to finish, or stop it, then run again "
                              "(two writers would compute the same cells)") from None
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "command": " ".join(sys.argv)[:300],
                             "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
        os.pwrite(fd, record, 0)   # written, then cut to length: never read empty once written
        os.ftruncate(fd, len(record))
        self._fd, self._depth = fd, 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _wait_for_holder(fd: int, tries: int = 50) -> str:
    """The holder's record; a holder that has just taken the lock may not have written it
    yet, so an empty or partial record is read again for up to half a second."""
    for _ in range(tries):
        holder = _read_holder(fd)
        if holder is not None:
            return holder
        time.sleep(0.01)
    return "another process"


def _read_holder(fd: int) -> str | None:
    """The holder's record as words, or None while it is empty or partly written."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return (f"pid {info['pid']} on {info['host']} since {info['since']} "
                f"({info['command']})")
    except (ValueError, KeyError, OSError):
        return None
