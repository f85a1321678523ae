"""Generate a report from saved results: ``hdrepro report --results results/full``.

The prose lives in ``templates/*.md.in`` beside this package (shipped with it); every number is
read from the results files, and each ``{{name}}`` placeholder is replaced by the table or
sentence that ``SECTIONS[name]`` builds. The parts, one module each: ``claims`` (the verdict
table), ``verification`` (equations, autodiff and finite differences), ``fig1``, ``grids``,
``divergence``, ``stacks``, ``extensions``, ``modern``, ``speed`` and ``overview`` (deviations, profile cost,
figure index); ``format`` holds the shared helpers.
"""
from __future__ import annotations

import argparse
import functools
import re
from pathlib import Path
from typing import Callable

from ..cli_help import HelpFormatter
from ..engine.results import completeness, has_results
from . import (claims, divergence, extensions, fig1, grids, modern, overview, speed, stacks,
               verification)
from .format import full_results
from .links import relink

SECTIONS: dict[str, Callable[[Path], str]] = {
    "abstract": overview.abstract,
    "claims_table": claims.claims_table,
    "equations_table": verification.equations_table,
    "equivalence_table": verification.equivalence_table,
    "equivalence_summary": verification.summary,
    "fd_table": verification.fd_table,
    "fig1_provenance": fig1.fig1_provenance,
    "fig1_summary": fig1.fig1_summary,
    "fig1_brief": fig1.fig1_brief,
    "fig1_table": fig1.fig1_table,
    "fig1_divergences": fig1.fig1_divergences,
    "grid_provenance": grids.grid_provenance,
    "grid_table": grids.grid_table,
    "grid_findings": grids.grid_findings,
    "grid_wall": grids.grid_full_wall,
    "seeds": grids.seeds_section,
    "seeds_summary": grids.seeds_summary,
    "second_order_table": grids.second_order_table,
    "second_order_findings": grids.second_order_findings,
    "bettercnn_divergence": divergence.section,
    "bettercnn_twins": divergence.twins_table,
    "bench_grid_cpu_table": lambda r: grids.bench_grid_table(r, "cpu"),
    "bettercnn_layout_cpu": grids.cpu_layout_speedup,
    "bench_grid_cuda_table": lambda r: grids.bench_grid_table(r, "cuda"),
    **{f"grid_speedup_{model}_{device}": functools.partial(grids.best_speedup, device=device,
                                                          model=model)
       for model in ("logreg", "mlnn", "bettercnn") for device in ("cpu", "cuda")},
    "deviations_table": overview.deviations,
    "profile_timing": overview.profile_timing,
    "reproducibility": overview.reproducibility,
    **stacks.SECTIONS,
    **speed.SECTIONS,
    **extensions.SECTIONS,
    **modern.SECTIONS,
}

#: the pages that hold the long tables, written beside the report under docs/report/; REPORT.md
#: links to each
PAGES = ("verification", "figure1", "grids", "stacks", "extensions", "speed", "setups")
TEMPLATES = Path(__file__).resolve().parent / "templates"
#: the first line of a report's hidden header; the full profile's marks the paper-scale report,
#: which no other profile may overwrite
HEADER = "<!-- hdrepro report: profile {profile}"


def render(template: str, results: Path, profile: str,
           pages: dict[str, str] | None = None) -> str:
    """Fill every ``{{name}}`` from SECTIONS (``{{profile}}`` with the profile's name, and
    ``{{figure_index}}`` last, from the filled text: it says where each figure is shown;
    `pages`, name -> rendered text, tells it which pages show one). Links are written relative
    to the results' root (the folder holding results/ and figures/); :func:`build` makes them
    relative to the file they end up in."""
    def fill(m: re.Match) -> str:
        name = m.group(1)
        if name in ("figure_index", "profile"):
            return profile if name == "profile" else m.group(0)
        if name not in SECTIONS:
            raise KeyError(f"template placeholder {{{{{name}}}}} has no section in "
                           "hdrepro.report.SECTIONS")
        return SECTIONS[name](results)
    text = re.sub(r"\{\{(\w+)\}\}", fill, template)
    return text.replace("{{figure_index}}", overview.figure_index(results, text, pages))


def build(results: Path, profile: str, out: Path) -> dict[Path, str]:
    """The report to be written at `out` and its pages under docs/report/ beside it (path ->
    text, links relative to each path), from the results folder `results`, laid out as
    <root>/results/<profile> with its figures in <root>/figures/<profile>. The report says
    under its title which stores are incomplete, and which profile made it."""
    root = results.parent.parent
    pages = {page: render((TEMPLATES / "pages" / f"{page}.md.in").read_text(), results, profile)
             for page in PAGES}
    report = render((TEMPLATES / "REPORT.md.in").read_text(), results, profile, pages)
    report = _banner(with_completeness(report, results), profile)
    texts = {out: report} | {out.parent / "docs" / "report" / f"{page}.md": text
                             for page, text in pages.items()}
    return {path: relink(text, root, path.parent, out.parent) for path, text in texts.items()}


def write(results: Path, profile: str, out: Path) -> list[Path]:
    """Write what :func:`build` makes; the paths written."""
    texts = build(results, profile, out)
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(texts)


def _banner(text: str, profile: str) -> str:
    """A small profile's report says so at its top, and where the paper-scale report is."""
    if profile == "full":
        return text
    return under_title(text, f"> **This report was made by the {profile} profile**, at reduced "
                             "scale: its numbers show that the pipeline runs, not what the "
                             "papers' experiments give. The paper-scale report is REPORT.md at "
                             "the top of the repository, made by the full profile.")


def under_title(text: str, notice: str) -> str:
    """`text` with `notice` as a paragraph right under its title (its first "# " line)."""
    head, title, rest = re.split(r"^(# .*)$", text, maxsplit=1, flags=re.M)
    return f"{head}{title}\n\n{notice}\n{rest}"


def refuse_overwrite(out: Path, profile: str) -> str | None:
    """Why writing a `profile` report to `out` is refused, or None: only the full profile may
    overwrite the paper-scale report."""
    if profile == "full" or not out.exists():
        return None
    with out.open() as f:
        first = f.readline()
    if first.startswith(HEADER.format(profile="full")):
        return (f"--out {out}: it holds the paper-scale (full-profile) report; write the "
                f"{profile} report elsewhere, e.g. --out out/{profile}/REPORT.md")
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="hdrepro report", formatter_class=HelpFormatter,
        description="Write a report (and its pages under docs/report/ beside it) from saved "
                    "results. The results folder is <root>/results/<profile>; its figures are "
                    "read from <root>/figures/<profile>.")
    ap.add_argument("--results", type=Path, default=Path("results") / "full",
                    help="results folder to read")
    ap.add_argument("--profile", default=None, help="profile name shown in the report "
                    "(default: the results folder's name)")
    ap.add_argument("--out", type=Path, default=Path("REPORT.md"), help="where to write it")
    args = ap.parse_args(argv)
    results = args.results.resolve()
    if not has_results(results):
        why = "it holds no results" if results.is_dir() else "no such folder"
        ap.error(f"--results {args.results}: {why}; name a folder that a run wrote "
                 "(results/full, or run ./run_all.sh first)")
    profile = args.profile or results.name
    refused = refuse_overwrite(args.out, profile)
    if refused:
        ap.error(refused)
    for path in write(results, profile, args.out.resolve()):
        shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
        print(f"wrote {shown}")


def with_completeness(text: str, results: Path) -> str:
    """The report with a notice under its title when a results folder it reads is incomplete:
    which stores lack runs, and how many of how many are stored."""
    folders = dict.fromkeys([results, full_results(results)])
    gaps = [f"`{folder.name}/{name}` {stored} of {expected}" for folder in folders if folder.is_dir()
            for name, stored, expected in completeness(folder) if stored < expected]
    if not gaps:
        return text
    notice = ("> **Incomplete results.** Some experiments have not stored every run, so the "
              "tables and figures below summarise partial grids (runs stored of runs expected): "
              + "; ".join(gaps) + ". Missing runs are counted as missing, never as diverged.")
    return under_title(text, notice)


if __name__ == "__main__":
    main()
