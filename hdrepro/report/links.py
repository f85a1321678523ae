"""Links that resolve wherever a report is written.

The report's parts write every link relative to the results' root (the folder holding
``results/`` and ``figures/``), or to the folder holding the package for code locations.
:func:`relink` rewrites each link relative to the file it ends up in, so that REPORT.md at the
root and its pages under ``docs/report/`` link to the same files.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

#: the folder holding the ``hdrepro`` package (the repository, or site-packages in a wheel)
PACKAGE_PARENT = Path(__file__).resolve().parent.parent.parent
#: a Markdown link or image: [text](target) or ![text](target)
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
#: the pages written beside a report; they may not exist yet while the first one is written
PAGES = "docs/report/"


def relink(text: str, root: Path, here: Path, report: Path) -> str:
    """`text` with each relative link rewritten relative to the folder `here`: links to the
    report's pages (docs/report/...) from the report's folder `report`, other links to a file
    under `root` or the package's folder; web links, anchors and links to nothing are left as
    they are."""
    def fix(m: re.Match) -> str:
        target = m.group(2)
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            return m.group(0)
        path, hash_, anchor = target.partition("#")
        base = report if path.startswith(PAGES) else next(
            (b for b in (root, PACKAGE_PARENT) if (b / path).exists()), None)
        if base is None:
            return m.group(0)
        moved = Path(os.path.relpath(base / path, here)).as_posix()
        return f"{m.group(1)}{moved}{hash_}{anchor}{m.group(3)}"
    return LINK.sub(fix, text)
