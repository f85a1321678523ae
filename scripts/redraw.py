"""Redraw every committed figure and REPORT.md from the committed results, training nothing.

Each figure's stamp (hdrepro.report.figures) names the command that redraws it; this runs each such
command once, in this process (so torch and matplotlib load once), with --plot-only, then
writes REPORT.md and its pages from results/full. `./run_all.sh --redraw` calls it.
"""
from __future__ import annotations

import os
import runpy
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commands(figures: Path) -> list[str]:
    """The distinct redraw commands of the stamped figures under `figures`, in path order."""
    from hdrepro.report.figures import origin
    found: dict[str, None] = {}
    for png in sorted(figures.rglob("*.png")):
        made = origin(png)
        if made is None:
            raise SystemExit(f"redraw: {png.relative_to(ROOT)} has no stamp, so nothing says how "
                             "to redraw it; redraw it with its driver (hdrepro plot NAME)")
        found[made.command] = None
    return list(found)


def driver(command: str) -> tuple[Path, list[str]]:
    """The driver script and its arguments for a stamp's `hdrepro plot|run NAME ...` command."""
    words = shlex.split(command)
    if words[:2] not in (["hdrepro", "plot"], ["hdrepro", "run"]) or len(words) < 3:
        raise SystemExit(f"redraw: cannot redraw from the stamp command {command!r}")
    return ROOT / "experiments" / f"{words[2]}.py", [*words[3:], "--plot-only"]


def run(path: Path, args: list[str]) -> None:
    """Run a driver as its own command would, in this process."""
    sys.argv = [str(path), *args]
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            raise


def main() -> None:
    os.chdir(ROOT)
    t0 = time.perf_counter()
    for command in commands(ROOT / "figures"):
        print(f"[redraw] {command}", flush=True)
        run(*driver(command))
    from hdrepro import report
    report.main(["--results", "results/full", "--out", "REPORT.md"])
    print(f"[redraw] done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
