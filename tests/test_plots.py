"""hdrepro.report.plots and plots_extensions: Figure 1 shows every run, including one that left no line
to draw; the family figure keeps its legend while a model has no runs yet."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hdrepro.report.plots import LOSS_CAP, plot_fig1  # noqa: E402
from hdrepro.report.plots_extensions import plot_sensitivity, shared_legend  # noqa: E402


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
