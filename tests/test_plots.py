"""hdrepro.plots: Figure 1 shows every run, including one that left no line to draw."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hdrepro.plots import LOSS_CAP, plot_fig1  # noqa: E402


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
