"""Tidy, resumable results: one CSV per kind of row, appended run by run.

A run's iteration and epoch rows are appended first and its one "final" row last, each in a
single flushed write, so a run counts as finished exactly when its final row is on disk. A rerun
skips finished runs; rows left by a run that crashed before its final row are dropped when read
(``load`` keeps, per run and step, only the last row written).
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
        path = self.path("final")
        if not path.exists():
            return set()
        with path.open() as f:
            return {row["run_id"] for row in csv.DictReader(f)}

    def append(self, run_id: str, labels: dict, result) -> None:
        """Write one finished run: its iteration rows, epoch rows, then its final row."""
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
        path = self.path(kind)
        if not path.exists():
            return pd.DataFrame()
        df = pd.read_csv(path)
        finished = self.finished()
        df = df[df["run_id"].isin(finished)]
        return df.drop_duplicates(KEYS[kind], keep="last").reset_index(drop=True)
