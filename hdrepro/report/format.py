"""The small shared pieces of REPORT.md's generator: reading a results CSV, finding the full
profile's results folder, and formatting Markdown tables and numbers. Every report module
imports these from here."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

def read_csv(path: Path) -> list[dict]:
    """The rows of a CSV file as dicts; no rows when the file does not exist."""
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def sci(x) -> str:
    x = float(x)
    return "0" if x == 0 else ("nan" if math.isnan(x) else f"{x:.1e}")


def full_results(results: Path) -> Path:
    """Where the full profile's results are (results/full beside this folder)."""
    return results.parent / "full"


def is_partial(stored: int, total: int | None) -> bool:
    """Whether a piece holds fewer runs than its profile has (`total` from its run record)."""
    return bool(total) and stored < total


def holding(results: Path, name: str) -> Path:
    """The folder holding the measurement file `name`: this results folder when it has it, else
    its sibling full or quick profile's (benchmarks are measured once per device, not per
    profile: the GPU's with the full profile, the CPU's with the quick one and, for the full
    report, with the full one too, whose 100 rounds narrow the intervals)."""
    for folder in (results, results.parent / "full", results.parent / "quick"):
        if (folder / name).exists():
            return folder
    return results


def run_record(folder: Path, record: str | None) -> dict:
    """A driver's record of its last invocation (``<name>_run.json``), {} when there is none."""
    path = folder / record if record else None
    return json.loads(path.read_text()) if path and path.exists() else {}


def span(values) -> str:
    """A count's range over rows, "3" or "3–5" ("0" for no rows)."""
    values = list(values)
    if not values:
        return "0"
    lo, hi = int(min(values)), int(max(values))
    return str(lo) if lo == hi else f"{lo}–{hi}"


def percent(p) -> str:
    """A share with its 95% interval (an :class:`hdrepro.studies.stats.Interval`):
    "42% [30%, 55%]"."""
    return f"{p.estimate:.0%} [{p.low:.0%}, {p.high:.0%}]"


def k_of_n(p) -> str:
    """A proportion's count and share with its interval: "5 of 12 (42% [19%, 68%])"."""
    return f"{p.estimate * p.n:.0f} of {p.n} ({percent(p)})"
