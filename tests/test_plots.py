"""hdrepro.report.plots and plots_extensions: Figure 1 shows every run, including one that left
no line to draw; the stacks figures show every trial beside its mean; the family figure keeps its
legend while a model has no runs yet, and draws claim 4's paired intervals as they are."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from hdrepro.report.plots import LOSS_CAP, plot_fig1  # noqa: E402
from hdrepro.report.plots_extensions import (OUTCOME_COLOUR, outcome_legend,  # noqa: E402
                                             plot_sensitivity, plot_tuning_change, shared_legend)
from hdrepro.studies.stats import Interval  # noqa: E402


def test_figure_1_marks_a_run_that_diverged_before_its_first_log():
    """BetterCNN SGDN-HD at full scale diverged at step 81, before its first logged iteration
    (every 100): without a mark the figure would simply lack its line."""
    iters = pd.DataFrame({"run_id": "sgdn", "model": "bettercnn", "optimizer": "SGDN",
                          "iteration": [100, 200], "epoch": 1, "loss": [2.0, 1.0],
                          "alpha": 1e-3, "seed": 1})
    epochs = pd.DataFrame({"run_id": ["sgdn"], "model": "bettercnn", "optimizer": "SGDN",
                           "iteration": [200], "val_loss": [1.1], "seed": 1})
    diverged = pd.DataFrame({"model": ["bettercnn"] * 2, "optimizer": ["SGDN-HD", "SGDN-HD"],
                             "diverged_at": [81, 64]})
    fig, axes = plt.subplots(3, 1, squeeze=False)
    plot_fig1(iters, epochs, ["bettercnn"], ["SGDN", "SGDN-HD"], axes, diverged)
    loss_ax = axes[1, 0]
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == \
        ["SGDN-HD diverged (steps 64, 81)"]
    crosses = loss_ax.collections[-1].get_offsets()
    assert crosses.tolist() == [[64, LOSS_CAP], [81, LOSS_CAP]]
    plt.close(fig)


def test_the_family_figure_keeps_its_legend_while_a_model_has_no_runs_yet():
    """A partial full run (BetterCNN not reached) leaves the last panel, where the legend sits,
    empty: the legend must still name every optimizer drawn elsewhere, each once."""
    losses = pd.DataFrame({"model": "logreg", "family": ["sgd", "sgd", "adam", "adam"],
                           "variant": ["base", "hd"] * 2, "alpha0": 1e-3,
                           "val_loss": [0.4, 0.3, 0.5, 0.45]})
    fig, axes = plt.subplots(1, 2, squeeze=False)
    plot_sensitivity(losses, axes[0, 0], "val_loss", ("sgd", "adam"))
    plot_sensitivity(losses.iloc[:0], axes[0, 1], "val_loss", ("sgd", "adam"))
    shared_legend(axes[0, 1], axes)
    assert [t.get_text() for t in axes[0, 1].get_legend().get_texts()] == ["SGD", "Adam"]
    assert [t.get_text() for t in axes[0, 1].texts] == ["no runs stored yet"]
    assert not axes[0, 0].texts
    plt.close(fig)


def test_the_tuning_panel_draws_each_pair_at_its_interval_in_its_outcome_colour():
    """Claim 4 drawn: a judged pair is a bar from its interval's low to high end at its row, in
    its outcome's colour; a pair with one seed has no bar, only a hollow marker."""
    from matplotlib.colors import to_rgba
    pairs = pd.DataFrame({"family": ["adam", "sgd", "momentum"],
                          "near": [Interval(2.0, 1.0, 3.0, 3), Interval(-0.5, -2.0, 1.0, 3),
                                   Interval(1.0, -float("inf"), float("inf"), 1)],
                          "outcome": ["wider", "tie", "one seed"]})
    fig, ax = plt.subplots()
    plot_tuning_change(pairs, ax, ("sgd", "momentum", "adam"))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["SGD", "Momentum", "Adam"]
    bars = [c.get_segments()[0] for c in ax.collections]   # the two judged pairs' bars
    assert [(s[0].tolist(), s[1].tolist()) for s in bars] == [([-2.0, 0.0], [1.0, 0.0]),
                                                             ([1.0, 2.0], [3.0, 2.0])]
    assert [to_rgba(c.get_color()[0]) for c in ax.collections] == \
        [to_rgba(OUTCOME_COLOUR["tie"]), to_rgba(OUTCOME_COLOUR["wider"])]
    hollow = [ln for ln in ax.lines if ln.get_markerfacecolor() == "none"]
    assert [(ln.get_xdata()[0], ln.get_ydata()[0]) for ln in hollow] == [(1.0, 1)]
    plt.close(fig)


@pytest.mark.parametrize("drawn, labels", [
    (["wider", "one seed"], ["wider", "tie", "narrower", "one seed"]),
    (["tie", "tie"], ["wider", "tie", "narrower"])])
def test_the_outcome_legend_names_one_seed_only_when_such_a_pair_is_drawn(drawn, labels):
    """A finished study has no hollow markers, so its legend must not explain one."""
    fig, ax = plt.subplots()
    outcome_legend(ax, drawn)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == labels
    plt.close(fig)


def test_the_stacks_figure_draws_every_single_trial_beside_its_mean():
    """A mean of 3.8%, 3.7% and 84% reads as neither: each trial is drawn, no clipping left of its
    α and clipping right of it, at its own error."""
    from hdrepro.report.plots import TRIAL_SHIFT, plot_stack_table
    comp = pd.DataFrame({"alpha": [100.0], "ours_none": [0.3063], "ours_clip": [0.05],
                         "report_none": [0.5], "report_clip": [0.1]})
    runs = pd.DataFrame({"alpha": 100.0, "variant": ["none"] * 3 + ["clip"] * 3,
                         "seed": [1, 2, 3] * 2,
                         "test_error": [0.0383, 0.0371, 0.8435, 0.05, 0.04, 0.06]})
    fig, ax = plt.subplots()
    plot_stack_table(comp, ax, runs=runs)
    singles = {ln.get_label(): ln for ln in ax.lines if "single trials" in ln.get_label()}
    none = singles["ours, no clipping, single trials"]
    clip = singles["ours, clipping, single trials"]
    assert none.get_xdata().tolist() == pytest.approx([100 / TRIAL_SHIFT] * 3)
    assert clip.get_xdata().tolist() == pytest.approx([100 * TRIAL_SHIFT] * 3)
    assert none.get_ydata().tolist() == pytest.approx([3.83, 3.71, 84.35])
    plt.close(fig)
