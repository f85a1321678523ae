"""hdrepro.report.figures: a figure's stamp (profile, results, redraw command) round-trips through its PNG."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from hdrepro.report.figures import FigureOrigin, origin, stamp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def draw(path: Path, **metadata) -> Path:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(path, metadata=metadata or None)
    plt.close(fig)
    return path


def test_a_stamp_round_trips_and_keeps_the_image_and_other_text(tmp_path):
    path = draw(tmp_path / "f.png", Title="a title")
    before = Image.open(path).convert("RGBA").tobytes()
    made = FigureOrigin("quick", "results/quick", "hdrepro plot fig1 --profile quick")
    stamp(path, made)
    assert origin(path) == made
    with Image.open(path) as image:
        assert image.text["Title"] == "a title"
        assert image.convert("RGBA").tobytes() == before
    again = FigureOrigin("full", "results/full", "hdrepro plot fig1 --profile full")
    assert origin(stamp(path, again)) == again   # restamping replaces, never duplicates


def test_a_figure_drawn_without_a_stamp_has_no_origin(tmp_path):
    assert origin(draw(tmp_path / "plain.png")) is None


@pytest.mark.parametrize("results,figures,command", [
    (ROOT / "results" / "quick", ROOT / "figures" / "quick",
     "hdrepro plot grid_mlnn --profile quick"),
    (Path("results/full"), Path("figures/full"), "hdrepro plot grid_mlnn --profile full"),
    (Path("results/full"), Path("figures"),
     "hdrepro plot grid_mlnn --profile full --figures figures"),
])
def test_the_redraw_command_names_only_the_folders_that_differ_from_the_defaults(
        results, figures, command, monkeypatch):
    monkeypatch.chdir(ROOT)
    made = FigureOrigin.of_driver("plot", "grid_mlnn", results.name, results, figures)
    assert made.command == command
    assert made.results == f"results/{results.name}"


def test_a_folder_outside_the_repository_is_named_in_full(tmp_path):
    made = FigureOrigin.of_driver("plot", "fig1", "smoke", tmp_path / "r", tmp_path / "f")
    assert made.command == (f"hdrepro plot fig1 --profile smoke --out {tmp_path / 'r'} "
                            f"--figures {tmp_path / 'f'}")


def test_the_stamp_carries_a_digest_of_the_stores_it_was_drawn_from(tmp_path):
    from hdrepro.report.figures import data_digest
    (tmp_path / "grid_mlnn.jsonl").write_text('{"a": 1}\n')
    (tmp_path / "grid_mlnn_run.json").write_text('{"wall_s": 1}')
    (tmp_path / "grid_mlnn.jsonl.lock").write_text("")
    (tmp_path / "grid_mlnn_extra.csv").write_text("x\n")
    (tmp_path / "grid_mlnnx.jsonl").write_text("another store\n")
    first = data_digest(tmp_path, "grid_mlnn")
    (tmp_path / "grid_mlnn_run.json").write_text('{"wall_s": 2}')   # a record, not data
    (tmp_path / "grid_mlnnx.jsonl").write_text("changed\n")         # another experiment's
    assert data_digest(tmp_path, "grid_mlnn") == first
    (tmp_path / "grid_mlnn_extra.csv").write_text("y\n")
    assert data_digest(tmp_path, "grid_mlnn") != first
    made = FigureOrigin.of_driver("plot", "grid_mlnn", "full", tmp_path, tmp_path / "f")
    assert made.data == data_digest(tmp_path, "grid_mlnn") and len(made.data) == 16
