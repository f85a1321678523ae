"""The `hdrepro` command: help on every subcommand, clear errors, a training run, and run_all.sh
calling nothing else."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hdrepro import cli

ROOT = Path(__file__).resolve().parent.parent


def test_every_subcommand_has_help_naming_its_options(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    top = capsys.readouterr().out
    for name in ("train", "grid", "stacks", "run", "plot", "report", "bench", "data"):
        assert name in top
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--model", "--optimizer", "--lr", "--hypergrad-lr", "--hyper-hypergrad-lr",
                   "--rule", "--epochs", "--seed", "--out"):
        assert option in text
    assert "(default: adam-hd)" in text and "(default: 1e-07)" in text
    for name in ("grid", "run", "plot", "bench"):
        assert cli.main([name, "--help"]) == 0
        assert "one of:" in capsys.readouterr().out


def _options_without_help(text: str) -> list[str]:
    """Option lines of an argparse --help with no words after them (on the line or the next)."""
    lines = text.split("\n") + [""]
    bare = []
    for line, after in zip(lines, lines[1:]):
        m = re.match(r"  (-\S+(?: \S+)*?)(\s{2,}\S.*)?$", line)
        if m and not m.group(2) and not after.startswith(" " * 8) and "--help" not in line:
            bare.append(m.group(1))
    return bare


@pytest.mark.parametrize("argv", [
    ["grid", "logreg", "--help"], ["stacks", "--help"], ["run", "asgc", "--help"],
    ["run", "equivalence", "--help"], ["bench", "rivals", "--help"], ["bench", "step", "--help"],
    ["bench", "grid", "--help"], ["report", "--help"], ["data", "fetch", "--help"],
    ["data", "info", "--help"], ["train", "--help"]])
@pytest.mark.slow  # starts a driver per case
def test_forwarded_help_is_the_drivers_own_and_explains_every_option(argv):
    # a separate process: the command becomes the driver (exec), as it does for a user
    r = subprocess.run([sys.executable, "-m", "hdrepro", *argv], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert re.search(r"--(profile|results|root|model)", text)
    assert _options_without_help(text) == []
    assert "(default: None)" not in text and "(default: False)" not in text


def test_the_help_check_finds_a_bare_option():
    text = "options:\n  --out OUT    where (default: x)\n  --quiet\n  --profile {a,b}\n" \
           "                 scale (default: a)\n"
    assert _options_without_help(text) == ["--quiet"]


@pytest.mark.parametrize("argv,words", [
    (["fly"], "invalid choice"), (["grid", "resnet"], "invalid choice"),
    (["train", "--bogus", "1"], "unrecognized arguments"),
    (["train", "--optimizer", "adamx", "--fraction", "0.01"], "Unknown optimizer"),
    (["train", "--lr", "-1", "--fraction", "0.01", "--optimizer", "sgd-hd"], "learning rate"),
    # scientific notation with a minus: the value reaches the check, which says why it is refused
    (["train", "--hypergrad-lr", "-1e-3", "--fraction", "0.01", "--optimizer", "sgd-hd"],
     "a negative β would move α up the loss's slope"),
    (["train", "--lr", "nan", "--fraction", "0.01", "--optimizer", "adam"], "must be finite"),
    (["data", "fetch", "imagenet"], "unknown data set"),
    (["train", "--fraction", "0.01", "--options", "[1,2]"], "must be a JSON object"),
    (["train", "--fraction", "0.01", "--options", "{x"], "is not JSON"),
    (["train", "--fraction", "0.01", "--device", "foo"], "use auto, cpu, cuda or cuda:N"),
    pytest.param(["train", "--fraction", "0.01", "--device", "cuda"], "no usable CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here"))])
def test_bad_options_give_a_clear_error(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert words in capsys.readouterr().err


def test_train_runs_once_and_writes_its_numbers(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert cli.main(["train", "--model", "logreg", "--fraction", "0.01", "--optimizer",
                     "hd-nadam", "--lr", "1e-3", "--no-progress", "--out", str(out)]) == 0
    run = json.loads(out.read_text())
    assert run["config"]["optim"]["name"] == "hd-nadam" and len(run["epochs"]) == 1
    assert f"test error {100 * run['final']['test_error']:.2f}%" in capsys.readouterr().out


@pytest.mark.slow  # starts a driver per case
def test_python_dash_m_hdrepro_is_the_same_command():
    r = subprocess.run([sys.executable, "-m", "hdrepro", "data", "info", "mnist"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "60000 train / 10000 test" in r.stdout


def test_run_all_calls_the_cli_and_nothing_else():
    text = (ROOT / "run_all.sh").read_text()
    assert not re.search(r"^\s*(step\s+(\"[^\"]*\"|\S+)\s+)?python", text, re.M)
    # a timed step is `step NAME COMMAND…`: the command is what counts
    commands = [re.sub(r"^step\s+(\"[^\"]*\"|\S+)\s+", "", line.strip())
                for line in text.splitlines() if re.match(r"\s*(step\s|hdrepro\b)", line)]
    assert commands and all(c.startswith("hdrepro ") for c in commands), commands
    for sub in ("grid", "stacks", "run", "bench", "report", "data"):
        assert any(c.startswith(f"hdrepro {sub} ") for c in commands), sub


def test_negative_numbers_are_glued_to_their_option_and_nothing_else_is():
    assert cli.glue_negative_numbers(["train", "--hypergrad-lr", "-1e-3", "--lr", "1e-3"]) == [
        "train", "--hypergrad-lr=-1e-3", "--lr", "1e-3"]
    assert cli.glue_negative_numbers(["grid", "--rules", "-x", "--quiet", "-5"]) == [
        "grid", "--rules", "-x", "--quiet=-5"]
