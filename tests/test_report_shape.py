"""The committed report reads as a paper: a short body, narrow tables, links that resolve, no
paths outside the repository; only the full profile writes it; the generator works from an
installed wheel; and `./run_all.sh --redraw` reproduces every committed figure and the report."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hdrepro import report
from hdrepro.report.figures import origin

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "REPORT.md"
PAGES = sorted((ROOT / "docs" / "report").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
BODY_LINES, TABLE_COLUMNS = 500, 8


def body(text: str) -> str:
    """The report before its appendices."""
    return text[:text.index("\n## Appendix")]


def test_the_body_is_short_and_its_tables_narrow():
    text = body(REPORT.read_text())
    assert len(text.splitlines()) <= BODY_LINES
    widths = [line.count("|") - 1 for line in text.splitlines() if line.startswith("|")]
    assert widths and max(widths) <= TABLE_COLUMNS


def test_the_shape_rules_can_fail():
    long = "# T\n" + "x\n" * (BODY_LINES + 1) + "\n## Appendix A. x\n"
    assert len(body(long).splitlines()) > BODY_LINES
    wide = "| " + " | ".join("c" * (TABLE_COLUMNS + 1)) + " |"
    assert wide.count("|") - 1 > TABLE_COLUMNS


@pytest.mark.parametrize("page", [REPORT, *PAGES], ids=lambda p: p.name)
def test_every_link_resolves_in_the_repository(page):
    text = page.read_text()
    targets = [t for t in LINK.findall(text) if not re.match(r"^[a-z]+:", t)]
    assert targets or page.name == "setups.md"
    for target in targets:
        path = target.split("#")[0]
        if path:
            resolved = (page.parent / path).resolve()
            assert resolved.exists(), f"{page.name} links {target}, which does not exist"
            assert resolved.is_relative_to(ROOT), f"{page.name} links outside the repository"


def test_the_report_and_pages_speak_only_of_the_project():
    """No path outside the repository, and no words about how the project was made."""
    banned = re.compile(r"\.\./shared|/work/|/tmp/|\bissues?\b|\bsessions?\b|\blent\b|"
                        r"\bborrowed\b", re.I)
    for page in [REPORT, *PAGES, ROOT / "README.md"]:
        for n, line in enumerate(page.read_text().splitlines(), 1):
            assert not banned.search(line), f"{page.name}:{n}: {line[:120]}"


def test_only_the_full_profile_overwrites_the_paper_scale_report(tmp_path, capsys):
    out = tmp_path / "REPORT.md"
    out.write_text(report.HEADER.format(profile="full") + ". the paper-scale report -->\n")
    assert report.refuse_overwrite(out, "full") is None
    assert "paper-scale" in report.refuse_overwrite(out, "quick")
    with pytest.raises(SystemExit) as e:
        report.main(["--results", str(ROOT / "results" / "quick"), "--out", str(out)])
    assert e.value.code == 2 and "paper-scale" in capsys.readouterr().err
    assert out.read_text().startswith("<!-- hdrepro report: profile full")
    other = tmp_path / "other.md"
    other.write_text("<!-- hdrepro report: profile quick. -->\n")
    assert report.refuse_overwrite(other, "smoke") is None


def test_run_all_refuses_a_small_profile_over_the_paper_scale_report(tmp_path):
    shutil.copy(REPORT, tmp_path / "REPORT.md")
    proc = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--profile", "quick", "--out",
                           str(tmp_path), "--dry-run"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "paper-scale" in proc.stderr
    proc = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--profile", "full", "--dry-run"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["results=./results/full", "figures=./figures/full",
                                   "report=./REPORT.md"]


def test_links_are_rewritten_for_the_file_they_end_up_in(tmp_path):
    from hdrepro.report.links import relink
    (tmp_path / "figures" / "full").mkdir(parents=True)
    (tmp_path / "figures" / "full" / "a.png").write_bytes(b"")
    text = "![](figures/full/a.png) [p](docs/report/x.md#h) [w](https://x.org) [n](nowhere.md)"
    here = tmp_path / "docs" / "report"
    assert relink(text, tmp_path, here, tmp_path) == (
        "![](../../figures/full/a.png) [p](x.md#h) [w](https://x.org) [n](nowhere.md)")
    assert relink(text, tmp_path, tmp_path, tmp_path) == text


@pytest.mark.slow
def test_the_report_is_written_from_an_installed_wheel(tmp_path, wheel_site):
    """The templates ship as package data: a wheel unpacked outside the checkout writes the
    report from a results folder, with code locations named relative to the package."""
    site, work = wheel_site, tmp_path / "work"
    templates = site / "hdrepro" / "report" / "templates"
    assert (templates / "REPORT.md.in").exists()
    assert all((templates / "pages" / f"{p}.md.in").exists() for p in report.PAGES)
    (work / "results").mkdir(parents=True)
    (work / "figures").mkdir()
    os.symlink(ROOT / "results" / "full", work / "results" / "full")
    os.symlink(ROOT / "figures" / "full", work / "figures" / "full")
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import hdrepro.report as r; print(r.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()).is_relative_to(site), where
    proc = subprocess.run([sys.executable, "-m", "hdrepro", "report"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = (work / "REPORT.md").read_text()
    assert written.startswith("<!-- hdrepro report: profile full")
    assert (work / "docs" / "report" / "setups.md").exists()
    equations = (work / "docs" / "report" / "verification.md").read_text()
    assert "hdrepro/optim/sgdhd.py#L" in equations and str(site) not in written + equations


def _copy_for_redraw(to: Path) -> None:
    """What `./run_all.sh --redraw` reads: the committed results and figures, the drivers; the
    package is linked so that code locations read as they do in the repository."""
    for folder in ("results/full", "results/quick", "results/full-additive-timing", "figures"):
        shutil.copytree(ROOT / folder, to / folder)
    shutil.copytree(ROOT / "experiments", to / "experiments",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (to / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "redraw.py", to / "scripts" / "redraw.py")
    os.symlink(ROOT / "hdrepro", to / "hdrepro")


@pytest.mark.slow
def test_redraw_reproduces_the_committed_figures_and_report(tmp_path):
    _copy_for_redraw(tmp_path)
    for page in (tmp_path / "figures").rglob("*.png"):
        os.utime(page, ns=(0, 0))   # so that a figure left as it was shows
    stamps = {png.relative_to(ROOT): origin(png) for png in (ROOT / "figures").rglob("*.png")}
    proc = subprocess.run([sys.executable, str(tmp_path / "scripts" / "redraw.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name, stamp in stamps.items():
        assert (tmp_path / name).stat().st_mtime_ns > 0, f"{name} was not redrawn"
        again = origin(tmp_path / name)
        assert again == stamp, f"{name}: redrawn {again}, committed {stamp}"
    for page in [REPORT, *PAGES]:
        name = page.relative_to(ROOT)
        assert (tmp_path / name).read_text() == page.read_text(), f"{name} differs"


def test_no_text_in_the_repository_points_outside_it_or_tells_how_it_was_made():
    """Every tracked text file (code, docs, templates, scripts): no path outside the repository,
    no work items or borrowed machines ("session" is left to the prose above: the stores' lock
    code speaks of a writer's session)."""
    banned = re.compile(r"\.\./shared|/work/|\bissues?\b|\blent\b|\bborrowed\b", re.I)
    files = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.in", "*.sh", "*.toml", "*.yml"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert len(files) > 50
    for name in files:
        if name == "tests/test_report_shape.py":
            continue
        for n, line in enumerate((ROOT / name).read_text().splitlines(), 1):
            assert not banned.search(line), f"{name}:{n}: {line[:120]}"
