"""Analytic hypergradients ≡ autodiff stacks ≡ finite differences, as a table and a figure.

Claim: Baydin et al.'s hand-derived hypergradients (SGD-HD, SGDN-HD, Adam-HD; additive and
multiplicative rules) and the reproducibility report's second-order HD (with the sign of its β
update corrected) equal reverse-mode autodiff through one optimizer step (Chandra et al.'s
construction), and a central finite difference of the next minibatch's loss.
Source: Baydin et al. (2018) Algorithms 1-3; the reproducibility report, Section 5.
Conditions: float64, LogReg (784-10) and a tanh MLP (784-64-64-10), seeded MNIST-shaped synthetic
minibatches of 32 (data the check makes, so it runs anywhere), one seed.
Runtime: smoke ~5 s (20 steps), quick ~15 s (200 steps), full ~1 min (1000 steps).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hdrepro.cli_help import HelpFormatter, PROFILE_HELP, run_main  # noqa: E402
from hdrepro.report.figures import FigureOrigin, stamp  # noqa: E402
from hdrepro.studies.equivalence import (Problem, compare, equivalence_cases, fd_cases,
                                         finite_difference_check, trajectory)  # noqa: E402

STEPS = {"smoke": 20, "quick": 200, "full": 1000}


def run(profile: str, out: Path, figures: Path) -> None:
    steps = STEPS[profile]
    rows = []
    for model in ("logreg", "mlp"):
        problem = Problem(model=model, steps=steps)
        for case in equivalence_cases():
            rows.append({"check": "analytic vs autodiff", **compare(case, problem)})
        for name, make, l2 in fd_cases():
            analytic, fd = finite_difference_check(make, problem, l2=l2)
            rows.append({"check": "analytic vs finite difference", "case": name, "model": model,
                         "steps": 7, "h_analytic": analytic, "h_fd": fd,
                         "h_rel_err": abs(analytic - fd) / abs(analytic)})
    out.mkdir(parents=True, exist_ok=True)
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("check", "case"), k))
    with (out / "equivalence.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    problem = Problem(model="mlp", steps=steps)
    alphas = out / "equivalence_alpha.csv"
    save_alpha_trajectories(problem, alphas)
    print(f"wrote {out / 'equivalence.csv'} ({len(rows)} rows) and {alphas}")
    draw(profile, out, figures)


def save_alpha_trajectories(problem: Problem, path: Path) -> None:
    """α_t of each analytic optimizer and of its autodiff twin, step by step, for the figure."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "case", "iteration", "alpha_analytic", "alpha_autodiff"])
        for case in equivalence_cases():
            a, b = trajectory(case.analytic, problem), trajectory(case.autodiff, problem)
            for i, (x, y) in enumerate(zip(a["alpha"].tolist(), b["alpha"].tolist())):
                w.writerow([problem.model, case.name, i, repr(x), repr(y)])


def draw(profile: str, out: Path, figures: Path) -> None:
    """The α_t figure from the stored trajectories (no optimizer runs), stamped."""
    path = plot_alpha_trajectories(out / "equivalence_alpha.csv",
                                   figures / "equivalence_alpha.png")
    stamp(path, FigureOrigin.of_driver("plot", "equivalence", profile, out, figures))
    print(f"wrote {path}")


def plot_alpha_trajectories(trajectories: Path, path: Path) -> Path:
    """α_t of each analytic optimizer (solid) over its autodiff twin (dashed), and |Δα|/α."""
    frame = pd.read_csv(trajectories)
    fig, (ax, ax_err) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for i, (name, run) in enumerate(frame.groupby("case", sort=False)):
        color = f"C{i % 10}"
        ls = "-" if i < 10 else "-."
        a, b = run.alpha_analytic.to_numpy(), run.alpha_autodiff.to_numpy()
        ax.plot(a, color=color, lw=2, alpha=0.6, ls=ls, label=name)
        ax.plot(b, color=color, lw=1, ls="--")
        err = np.maximum(np.abs(a - b) / np.abs(a), 1e-18)
        ax_err.semilogy(err, color=color, lw=1, ls=ls)
    ax.set_ylabel("α_t")
    ax.set_yscale("log")
    ax.set_title(f"α_t: analytic (solid) vs autodiff stack (dashed), "
                 f"{frame.model.iloc[0]}, float64")
    ax.legend(fontsize=7, ncol=2)
    ax_err.axhline(1e-10, color="k", ls=":", lw=1, label="test tolerance 1e-10")
    ax_err.set_ylabel("|α_analytic − α_autodiff| / α")
    ax_err.set_xlabel("iteration")
    ax_err.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    ap.add_argument("--profile", choices=sorted(STEPS), default="quick", help=PROFILE_HELP)
    ap.add_argument("--out", type=Path, default=None,
                    help="results folder (default results/<profile>)")
    ap.add_argument("--figures", type=Path, default=None,
                    help="figures folder (default figures/<profile>)")
    ap.add_argument("--plot-only", action="store_true",
                    help="redraw the figure from the stored α trajectories")
    args = ap.parse_args(argv)
    out = args.out or Path("results") / args.profile
    figures = args.figures or Path("figures") / args.profile
    (draw if args.plot_only else run)(args.profile, out, figures)


if __name__ == "__main__":
    run_main(main)
