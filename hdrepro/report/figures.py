"""Every figure says where it came from.

A driver that writes a figure stamps it with a :class:`FigureOrigin`: the profile that made the
results, the results folder it drew from, the ``hdrepro`` command that redraws it, and a digest
of the stored results it was drawn from (so a redraw can be checked against the committed
figure without comparing pixels). The stamp
lives in the PNG's own text chunk (key ``"hdrepro"``), so it travels with the file, and REPORT.md's
figure index reads it back (:func:`origin`) instead of trusting a hand-kept list.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

KEY = "hdrepro"


@dataclass(frozen=True)
class FigureOrigin:
    profile: str     # smoke | quick | full
    results: str     # the results folder the figure was drawn from
    command: str     # the command that redraws it from those results
    data: str = ""   # SHA-256 (first 16 hex digits) of the stored results it was drawn from

    @classmethod
    def of_driver(cls, subcommand: str, name: str, profile: str, results: Path,
                  figures: Path) -> "FigureOrigin":
        """The origin of a figure drawn by ``hdrepro <subcommand> <name>``; the command repeats
        the folders only where they differ from the defaults (results/<profile>,
        figures/<profile>)."""
        command = f"hdrepro {subcommand} {name} --profile {profile}"
        if _shown(results) != f"results/{profile}":
            command += f" --out {_shown(results)}"
        if _shown(figures) != f"figures/{profile}":
            command += f" --figures {_shown(figures)}"
        return cls(profile, _shown(results), command, data_digest(Path(results), name))


def data_digest(results: Path, name: str) -> str:
    """A digest of the stores of experiment ``name`` in ``results``: the files named ``<name>.*``
    or ``<name>_*``, without the run records and locks, which change with every invocation."""
    h = hashlib.sha256()
    for path in sorted(results.glob(f"{name}[._]*")):
        if path.suffix == ".lock" or path.name.endswith("_run.json") or not path.is_file():
            continue
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _shown(path: Path) -> str:
    """A path as the reader would type it: relative to the working directory (the checkout's
    root, where the drivers run) when inside it."""
    path = Path(path)
    full, here = path.resolve(), Path.cwd().resolve()
    return str(full.relative_to(here)) if full.is_relative_to(here) else str(path)


def stamp(path: Path, figure_origin: FigureOrigin) -> Path:
    """Write ``figure_origin`` into the PNG at ``path`` (other text chunks kept)."""
    with Image.open(path) as image:
        image.load()
        info = PngInfo()
        for key, value in getattr(image, "text", {}).items():
            if key != KEY:
                info.add_text(key, value)
        info.add_text(KEY, json.dumps(asdict(figure_origin), sort_keys=True))
        image.save(path, pnginfo=info)
    return path


def origin(path: Path) -> FigureOrigin | None:
    """The stamp of the PNG at ``path``, or None for a figure drawn without one."""
    with Image.open(path) as image:
        text = getattr(image, "text", {}).get(KEY)
    return None if text is None else FigureOrigin(**json.loads(text))
