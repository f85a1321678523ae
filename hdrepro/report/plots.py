"""Plot functions: they take tidy results (pandas DataFrames) and axes, and draw; drivers save.

Re-plotting never re-trains: every function here reads saved rows only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..engine.models import TITLES as MODEL_TITLES
from ..methods.registry import title
from ..studies.grids import BASE_OF

FAMILY_COLORS = {"SGD": "C0", "SGDN": "C1", "Adam": "C2"}


def style(optimizer: str) -> dict:
    """Same colour per base optimizer; solid for HD, dashed for the base."""
    family = optimizer.replace("-HD", "")
    return {"color": FAMILY_COLORS.get(family, "C7"),
            "ls": "-" if optimizer.endswith("-HD") else "--", "lw": 1.3}


def _band(ax, x, runs: np.ndarray, label: str, **kw) -> None:
    """Mean over seeds (rows of `runs`) with a min-max band."""
    ax.plot(x, np.nanmean(runs, 0), label=label, **kw)
    if runs.shape[0] > 1:
        ax.fill_between(x, np.nanmin(runs, 0), np.nanmax(runs, 0), color=kw["color"], alpha=0.15,
                        lw=0)


def _per_seed(df: pd.DataFrame, x: str, y: str, smooth: int = 1):
    """Align runs of one optimizer on `x`; returns (x values, seeds × steps array)."""
    wide = df.pivot_table(index=x, columns="seed", values=y)
    if smooth > 1:
        wide = wide.rolling(smooth, min_periods=1).mean()
    return wide.index.to_numpy(), wide.to_numpy().T


LOSS_CAP = 10.0  # cross-entropy starts near ln 10 ≈ 2.3; higher values are drawn at the cap


def plot_fig1(iterations: pd.DataFrame, epochs: pd.DataFrame, model_order: list[str],
              optimizer_order: list[str], axes, diverged: pd.DataFrame | None = None) -> None:
    """Baydin et al.'s Figure 2 layout: per model (column) α_t, training loss, validation loss.

    `axes` is a 3 × len(model_order) array sharing an iteration axis per column (validation loss
    at the last iteration of each epoch). Lines are means over seeds with a min-max band; the
    training loss is a moving average over a fifth of an epoch (of the iteration rows' losses,
    each itself the mean over the steps since the previous row). α_t uses a symmetric log scale so
    that negative learning rates show; losses above LOSS_CAP are drawn at the cap. Runs in
    `diverged` (rows with model, optimizer, diverged_at) get a × at the cap where they stopped, so
    that a run with no line left (one that diverged before its first log) still shows.
    """
    for j, model in enumerate(model_order):
        it_m, ep_m = iterations[iterations.model == model], epochs[epochs.model == model]
        # A fifth of an epoch in iteration rows (a thinned log's rows each hold the mean loss
        # over the steps since the previous one), from epoch 1 of one run.
        first = it_m[(it_m.epoch == 1) & (it_m.run_id == it_m.run_id.iloc[0])] if len(it_m) \
            else it_m
        window = max(1, round(len(first) / 5))
        crosses = []
        for opt in optimizer_order:
            kw = style(opt)
            if diverged is not None:
                crosses += _mark_diverged(axes[1, j], diverged[(diverged.model == model)
                                                               & (diverged.optimizer == opt)], kw)
            it_o, ep_o = it_m[it_m.optimizer == opt], ep_m[ep_m.optimizer == opt]
            if it_o.empty:
                continue
            _band(axes[0, j], *_per_seed(it_o, "iteration", "alpha"), opt, **kw)
            _band(axes[1, j], *_per_seed(it_o.assign(loss=it_o.loss.clip(upper=LOSS_CAP)),
                                          "iteration", "loss", window), opt, **kw)
            if not ep_o.empty:  # at the iteration where each epoch ends
                ep_o = ep_o.assign(val_loss=ep_o.val_loss.clip(upper=LOSS_CAP))
                _band(axes[2, j], *_per_seed(ep_o, "iteration", "val_loss"), opt, marker=".", **kw)
        alpha0 = float(it_m.alpha.iloc[0]) if len(it_m) else 1e-3
        axes[0, j].set_title(MODEL_TITLES.get(model, model))
        linthresh = abs(alpha0) / 10 or 1e-6
        axes[0, j].set_yscale("symlog", linthresh=linthresh)
        axes[0, j].axhline(0, color="k", lw=0.5)
        _symlog_decades(axes[0, j], linthresh)
        for i in (1, 2):
            axes[i, j].set_yscale("log")
            axes[i, j].set_ylim(top=LOSS_CAP * 1.2)
        axes[2, j].set_xlabel("iteration")
        if crosses:
            axes[1, j].legend(handles=crosses, fontsize=7, loc="upper right")
    axes[0, 0].set_ylabel("learning rate α_t")
    axes[1, 0].set_ylabel("training loss")
    axes[2, 0].set_ylabel("validation loss")
    # one legend for the figure, below the panels, so that it never covers a curve
    handles, labels = axes[0, -1].get_legend_handles_labels()
    if handles:
        axes[0, -1].figure.legend(handles, labels, loc="lower center", ncol=len(labels),
                                  fontsize=8, frameon=False)


def _symlog_decades(ax, linthresh: float) -> None:
    """Ticks at 0 and at whole decades from 10·linthresh outwards: the ±linthresh ticks sit
    next to 0 on a symmetric-log axis, where their labels would overlap its label."""
    low, high = ax.get_ylim()
    first = int(np.floor(np.log10(linthresh))) + 1
    ups = [10.0 ** k for k in range(first, int(np.ceil(np.log10(max(high, 10 * linthresh)))) + 1)]
    downs = [-10.0 ** k for k in range(first, int(np.ceil(np.log10(max(-low, 10 * linthresh)))) + 1)]
    ticks = [x for x in downs[::-1] + [0.0] + ups if low <= x <= high]
    ax.set_yticks(ticks)
    ax.minorticks_off()


def _mark_diverged(ax, runs: pd.DataFrame, kw: dict) -> list:
    """A × per diverged run at (its step, LOSS_CAP); returns the legend handle, if any."""
    if runs.empty:
        return []
    steps = sorted(int(s) for s in runs.diverged_at)
    optimizer = runs.optimizer.iloc[0]
    return [ax.scatter(steps, [LOSS_CAP] * len(steps), marker="x", s=45, color=kw["color"],
                       zorder=3, label=f"{optimizer} diverged (step{'s' if len(steps) > 1 else ''}"
                                       f" {', '.join(map(str, steps))})")]


WORSE_COLOR, BETTER_COLOR, BASELINE_COLOR = "#f08080", "#eaf2fb", "#d9d9d9"
MISSING_COLOR = "#bdbdbd"


def grid_layers(panel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, colour class, mask) of a grid Panel: class 0 = baseline row, 1 = not worse,
    2 = worse than the baseline at the same α₀, 3 = missing (nothing stored); mask is True where
    a stored cell is NaN (diverged in every stored seed), which the heatmap leaves blank, as the
    report does. A missing cell is never masked: it is drawn grey and hatched instead."""
    values = panel.values.to_numpy(dtype=float)
    classes = np.where(panel.worse.to_numpy(dtype=bool), 2, 1)
    classes[0, :] = 0
    missing = panel.missing.to_numpy(dtype=bool)
    classes[missing] = 3
    return values, classes, np.isnan(values) & ~missing


def plot_grid(panel, ax, fmt: str = ".3f"):
    """Heatmap of one grid Panel in the report's style: the baseline row on top, β below, α₀
    across; red cells are worse than the baseline (rounded to 2 decimals), blank cells diverged,
    grey hatched cells were never stored (a partial grid)."""
    import seaborn as sns
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    values, classes, mask = grid_layers(panel)
    annot = np.vectorize(lambda v: "" if np.isnan(v) else (
        f"{v:{fmt}}" if abs(v) < 1e3 else f"{v:.1e}"), otypes=[object])(values)
    annot[classes == 3] = "missing"
    sns.heatmap(classes, mask=mask, annot=annot, fmt="", vmin=0, vmax=3, cbar=False, ax=ax,
                cmap=ListedColormap([BASELINE_COLOR, BETTER_COLOR, WORSE_COLOR, MISSING_COLOR]),
                linewidths=0.5, linecolor="white", annot_kws={"fontsize": 7})
    for i, j in zip(*np.nonzero(classes == 3)):
        ax.add_patch(Rectangle((j, i), 1, 1, fill=False, hatch="///", lw=0, color="#808080"))
    ax.set_facecolor("white")
    ax.set_xticklabels([f"{a:g}" for a in panel.values.columns], rotation=0, fontsize=8)
    ylabels = [title(BASE_OF[panel.optimizer])] + [f"{b:g}" for b in panel.values.index[1:]]
    ax.set_yticklabels(ylabels, rotation=0, fontsize=8)
    ax.set_xlabel("α₀")
    ax.set_ylabel("β")
    heading = f"{title(panel.optimizer)} ({panel.rule})"
    if panel.gamma:
        heading += f", γ = {panel.gamma:g}"
        if panel.second_order != "derived":
            heading += f", {panel.second_order} sign"
    ax.set_title(heading, fontsize=10)
    return ax


CLIP_COLORS = {"none": "C3", "clip": "C0"}
#: the factor on α that sets a table's single trials beside their mean (log axis)
TRIAL_SHIFT = 1.12


def plot_stack_table(comp: pd.DataFrame, ax, baselines: dict | None = None,
                     title: str = "", runs: pd.DataFrame | None = None) -> None:
    """Test error vs the secondary α (log axis) for one clipping-report table: ours (solid, filled)
    and the report's (dashed, hollow), without clipping (red) and with it (blue); horizontal lines
    are the primary alone (``baselines``: {"ours": …, "report": …}). `comp` is
    :func:`hdrepro.studies.stacks.comparison`'s frame (errors as fractions); `runs`, if given,
    :func:`hdrepro.studies.stacks.single_trials`'s single trials, drawn as small faint points beside
    each mean (no clipping a little left, clipping a little right), so that a mean between two
    modes reads as such."""
    if comp.empty:
        ax.set_title(title + " (no results)", fontsize=9)
        return
    comp = comp.sort_values("alpha")
    for v, word in (("none", "no clipping"), ("clip", "clipping")):
        c = CLIP_COLORS[v]
        ax.plot(comp.alpha, 100 * comp[f"ours_{v}"], "-o", color=c, ms=4, label=f"ours, {word}")
        ax.plot(comp.alpha, 100 * comp[f"report_{v}"], "--o", color=c, ms=5, mfc="none",
                alpha=0.8, label=f"report, {word}")
        if runs is not None:
            r = runs[(runs.variant == v) & runs.alpha.isin(comp.alpha)]
            shift = TRIAL_SHIFT if v == "clip" else 1 / TRIAL_SHIFT
            ax.plot(r.alpha * shift, 100 * r.test_error, ".", color=c, ms=3, alpha=0.35,
                    label=f"ours, {word}, single trials")
    for who, ls in (("ours", "-"), ("report", "--")):
        value = (baselines or {}).get(who)
        if value is not None and np.isfinite(value):
            ax.axhline(100 * value, color="k", ls=ls, lw=0.8, alpha=0.6,
                       label=f"{who}, primary alone")
    ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_xlabel("secondary SGD α")
    ax.set_ylabel("test error (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, lw=0.5)


def plot_clip_trace(trace: pd.DataFrame, ax_norm, ax_value, hyper: str = "lr") -> None:
    """The clipping mechanism over one run: |h_t| unclipped (both runs), θ_t and the clipped norm
    (clipped run) on `ax_norm` (log scale); the hyperparameter's value in both runs on
    `ax_value`. `trace` has a "run" column ("none" or "clip") and :func:`hdrepro.studies.stacks.trace`'s
    columns."""
    for run, word in (("none", "no clipping"), ("clip", "clipping")):
        t = trace[(trace.run == run) & (trace.hyper == hyper)]
        if t.empty:
            continue
        c = CLIP_COLORS[run]
        ax_norm.plot(t.step, t.h.abs(), color=c, lw=0.6, alpha=0.6, label=f"|h_t|, {word}")
        if run == "clip":
            ax_norm.plot(t.step, t.theta, color="k", lw=1.0, label="threshold θ_t")
            ax_norm.plot(t.step, t.clipped, color="C2", lw=0.6, alpha=0.7,
                         label="|h_t| after clipping")
        ax_value.plot(t.step, t.value, color=c, lw=1.0, label=word)
    ax_norm.set_yscale("log")
    ax_norm.set_xlabel("step")
    ax_norm.set_ylabel(f"hypergradient of {hyper}")
    # legends below the panels: the traces fill the panels' whole height
    ax_norm.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    ax_value.set_xlabel("step")
    ax_value.set_ylabel(f"{hyper} (as used)")
    ax_value.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
