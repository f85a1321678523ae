"""Tidy, resumable results: training runs as CSV rows appended run by run (RunStore), grid cells
as JSON lines appended cell by cell (GridStore).

A run's iteration and epoch rows are appended first and its one "final" row last, each in a
single flushed write, so a run counts as finished exactly when its final row is on disk. A rerun
skips finished runs; rows left by a run that crashed before its final row are dropped when read
(``load`` keeps, per run and step, only the last row written). In both stores a line torn by a
kill inside a write is never read, and is cut off before the next append.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pandas as pd

KINDS = ("iterations", "epochs", "final")
KEYS = {"iterations": ["run_id", "iteration"], "epochs": ["run_id", "epoch"],
        "final": ["run_id"]}


class RunStore:
    """Rows of many runs under ``<folder>/<name>_{iterations,epochs,final}.csv``."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name = Path(folder), name
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, kind: str) -> Path:
        return self.folder / f"{self.name}_{kind}.csv"

    def finished(self) -> set[str]:
        text = whole_lines(self.path("final"))
        return {row["run_id"] for row in csv.DictReader(io.StringIO(text))}

    def append(self, runs: list[tuple[str, dict, object]]) -> None:
        """Write finished runs, each a (run_id, labels, RunResult): its iteration rows, epoch rows,
        then its final row. (The same call as GridStore.append, so that hdrepro.grid's executors
        can store either.)"""
        for run_id, labels, result in runs:
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
        cut_torn_tail(path)
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            with path.open() as f:
                fields = next(csv.reader(f))
        else:
            fields = list(rows[0])
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerows(rows)
        with path.open("a") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())

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

    Rows are written only by the process that drives the grid, each as one ``os.write`` of a whole
    line to a file opened in append mode, then fsync'd: a kill at any moment loses at most the cells
    in flight. A torn last line (a line without its newline, left by a kill inside the write or a
    full disk) is ignored when read and cut off before the next append.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

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
