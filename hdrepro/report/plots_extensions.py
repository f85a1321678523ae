"""Plot functions of the extension experiments (optimizer family, learning-rate-free rivals, ASGC,
Adam's ε): each takes tidy saved rows and axes, and draws; drivers save the figures."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..methods import family
from .plots import LOSS_CAP

#: one colour per optimizer of the family (matplotlib's ten, then three more)
#: one colour per optimizer from the qualitative tab10 palette; past ten optimizers the colours
#: repeat with other line styles and markers, so no two optimizers share all three
FAMILY_PALETTE = {name: f"C{i % 10}" for i, name in enumerate(family.FAMILY)}
FAMILY_STYLE = {name: {"base": "-" if i < 10 else ":", "hd": "--" if i < 10 else "-.",
                       "marker": "." if i < 10 else "s"} for i, name in enumerate(family.FAMILY)}
#: the newer methods on SGD's row of the sensitivity study: black, each its own line and marker
MODERN_STYLE = {"marthe": ("MARTHE", "-.", "x"), "hdm": ("HDM", ":", "^")}


def plot_sensitivity(losses: pd.DataFrame, ax, metric: str = "val_loss",
                     order: tuple[str, ...] = family.SLIDES) -> None:
    """Final loss vs α₀ (log axis), one colour per optimizer: solid the base, dashed its HD
    version, and the newer methods of SGD's row in black (MODERN_STYLE); diverged points are left out, losses above LOSS_CAP drawn at the cap. `losses` is
    :func:`hdrepro.studies.sensitivity.final_losses` for one model; a model with no rows yet (a run still
    under way) gets a note instead of an empty frame."""
    if losses.empty:
        ax.text(0.5, 0.5, "no runs stored yet", transform=ax.transAxes, ha="center",
                va="center", color="0.4")
    for name in order:
        style = FAMILY_STYLE[name]
        for variant, label in (("base", family.TITLES[name]), ("hd", None)):
            d = losses[(losses.family == name) & (losses.variant == variant)].sort_values("alpha0")
            if d.empty:
                continue
            ax.plot(d.alpha0, d[metric].clip(upper=LOSS_CAP), ls=style[variant],
                    marker=style["marker"], ms=4 if style["marker"] == "." else 3, lw=1.1,
                    color=FAMILY_PALETTE[name], label=label)
    for variant, (label, line, marker) in MODERN_STYLE.items():
        d = losses[losses.variant == variant].sort_values("alpha0")
        if len(d):
            ax.plot(d.alpha0, d[metric].clip(upper=LOSS_CAP), ls=line, marker=marker, ms=4,
                    lw=1.1, color="k", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("α₀")
    ax.grid(alpha=0.3, lw=0.5)


#: the colour of each outcome of the paired near-best comparison (pair_tuning's words)
OUTCOME_COLOUR = {"wider": "tab:green", "tie": "0.45", "narrower": "tab:red", "one seed": "0.45"}


def plot_tuning_change(pairs: pd.DataFrame, ax, order: tuple[str, ...] = family.SLIDES) -> None:
    """Claim 4 for one model, drawn: per optimizer (top to bottom in `order`), HD − base in the
    number of α₀ that end near-best, paired by seed, with its 95% t interval, coloured by its
    outcome. A pair with one seed so far has no interval: a hollow marker at its difference.
    `pairs` is :func:`hdrepro.studies.sensitivity.pair_tuning`'s rows for the model."""
    names = [n for n in order if n in set(pairs.get("family", ()))]
    for y, name in enumerate(names):
        r = pairs[pairs.family == name].iloc[0]
        d, colour = r["near"], OUTCOME_COLOUR[r["outcome"]]
        if r["outcome"] == "one seed":
            ax.plot(d.estimate, y, "o", mfc="none", mec=colour, ms=5)
            continue
        ax.errorbar(d.estimate, y, xerr=[[d.estimate - d.low], [d.high - d.estimate]], fmt="o",
                    ms=5, color=colour, capsize=2, lw=1.2)
    if not names:
        ax.text(0.5, 0.5, "no runs stored yet", transform=ax.transAxes, ha="center",
                va="center", color="0.4")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(names)), [family.TITLES[n] for n in names], fontsize=7)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel("HD − base: α₀ near-best (paired by seed, 95% t)", fontsize=8)
    ax.grid(alpha=0.3, lw=0.5, axis="x")


def outcome_legend(ax, drawn=("wider", "tie", "narrower"), **kwargs) -> None:
    """The legend of :func:`plot_tuning_change`'s colours: the three verdicts, and "one seed"
    only where `drawn` (the outcomes in the figure) holds such a pair."""
    from matplotlib.lines import Line2D
    shown = [k for k in OUTCOME_COLOUR if k != "one seed" or k in set(drawn)]
    handles = [Line2D([], [], marker="o", ls="none", color=OUTCOME_COLOUR[k],
                      mfc="none" if k == "one seed" else OUTCOME_COLOUR[k], label=k)
               for k in shown]
    ax.legend(handles=handles, **kwargs)


def shared_legend(ax, axes, **kwargs) -> None:
    """One legend on `ax` for the labelled lines of every panel in `axes`, each label once: a
    panel left empty (a run still partial) must not lose the figure's legend."""
    handles = {}
    for panel in np.ravel(axes):
        for handle, label in zip(*panel.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    ax.legend(list(handles.values()), list(handles), **kwargs)


def plot_scale_sensitivity(frame: pd.DataFrame, ax, colours: dict, titles: dict) -> None:
    """Final validation loss vs each method's own initial scale (log axis), mean over seeds with
    the seeds' range as error bars; `frame` has columns method, scale, val_loss."""
    for method, g in frame.groupby("method", sort=False):
        s = g.groupby("scale")["val_loss"].agg(["mean", "min", "max"]).reset_index()
        ax.errorbar(s.scale, s["mean"], yerr=[s["mean"] - s["min"], s["max"] - s["mean"]],
                    marker="o", ms=4, lw=1.1, capsize=2, color=colours.get(method, "C7"),
                    label=titles.get(method, method))
    ax.set_xscale("log")
    ax.set_xlabel("initial scale (relative to its default)")
    ax.set_ylabel("final validation loss")
    ax.grid(alpha=0.3, lw=0.5)


def plot_curves(frame: pd.DataFrame, ax, metric: str, colours: dict, titles: dict) -> None:
    """Per-epoch curves (`metric` is a curve_* column holding a list per run), mean over runs
    per method."""
    for method, g in frame.groupby("method", sort=False):
        curves = [c for c in g[metric] if len(c)]
        if not curves:
            continue
        n = min(map(len, curves))
        y = np.mean([c[:n] for c in curves], axis=0)
        ax.plot(np.arange(1, n + 1), y, marker=".", lw=1.1, color=colours.get(method, "C7"),
                label=titles.get(method, method))
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3, lw=0.5)


def plot_distributions(frame: pd.DataFrame, ax, column: str, order: list[str],
                       titles: dict) -> None:
    """One box per method of `column` over its runs (diverged runs drawn at 90%)."""
    data = [frame[frame.method == m][column].fillna(0.9).to_numpy() for m in order]
    ax.boxplot(data, showfliers=True)
    ax.set_xticks(range(1, len(order) + 1), [titles.get(m, m) for m in order], rotation=30,
                  ha="right", fontsize=8)
    ax.grid(alpha=0.3, lw=0.5, axis="y")


def plot_histogram_time(hist: pd.DataFrame, ax, tag: str = "grad") -> None:
    """Heatmap of the share of gradient elements per log₁₀|g| bin (y) over steps (x), all layers
    together; the edge bins are left out."""
    h = hist[(hist.tag == tag) & np.isfinite(hist.log10_lo) & np.isfinite(hist.log10_hi)]
    wide = h.pivot_table(index="log10_lo", columns="step", values="count", aggfunc="sum",
                         fill_value=0)
    share = wide / wide.sum(0).replace(0, np.nan)
    steps, lo = wide.columns.to_numpy(), wide.index.to_numpy()
    width = np.diff(lo).min() if len(lo) > 1 else 0.25
    ax.pcolormesh(steps, lo + width / 2, share.to_numpy(), shading="nearest", cmap="viridis")
    ax.set_xlabel("step")
    ax.set_ylabel("log₁₀ |g|")


def plot_layer_histograms(hist: pd.DataFrame, ax, layer: str, tags=("before", "after")) -> None:
    """|g| distribution of one layer (all recorded steps), one line per tag."""
    for tag, ls in zip(tags, ("-", "--")):
        h = hist[(hist.layer == layer) & (hist.tag == tag) & np.isfinite(hist.log10_lo)
                 & np.isfinite(hist.log10_hi)]
        s = h.groupby("log10_lo")["count"].sum()
        if s.sum() == 0:
            continue
        ax.plot(s.index, s / s.sum(), ls=ls, lw=1.2, label=tag)
    ax.set_xlabel("log₁₀ |g|")
    ax.set_ylabel("share of elements")
    ax.set_title(layer, fontsize=8)
    ax.grid(alpha=0.3, lw=0.5)


def plot_threshold_grid(table: pd.DataFrame, ax, title: str, cap: int) -> None:
    """One HD optimizer of Baydin et al.'s tuning grid (:func:`hdrepro.studies.threshold.
    iteration_table`): the baseline row on top, β below, α₀ across, each cell the iterations to
    the loss threshold on a log colour scale; cells where HD is at least as fast as the baseline
    at the same α₀ are outlined (the region their figure marks); grey "–" never reached it within
    `cap` iterations."""
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    values = table.to_numpy(dtype=float)
    shown = np.where(np.isfinite(values), values, np.nan)
    ax.imshow(np.ones_like(values), cmap="Greys", vmin=0, vmax=5, aspect="auto")
    ax.imshow(shown, cmap="viridis_r", norm=LogNorm(vmin=1, vmax=max(cap, 2)), aspect="auto")
    for i, j in np.ndindex(values.shape):
        v = values[i, j]
        ax.text(j, i, f"{v:.0f}" if np.isfinite(v) else "–", ha="center", va="center",
                fontsize=6.5, color="white" if np.isfinite(v) and v >= cap ** 0.5 else "black")
        if i and np.isfinite(v) and v <= values[0, j]:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.4))
    ax.axhline(0.5, color="white", lw=3)
    ax.set_xticks(range(values.shape[1]), [f"{a:g}" for a in table.columns], fontsize=7)
    ax.set_yticks(range(values.shape[0]), ["base"] + [f"{b:g}" for b in table.index[1:]],
                  fontsize=7)
    ax.set_xlabel("α₀")
    ax.set_ylabel("β")
    ax.set_title(title, fontsize=9)
