"""The figures of the three tabular experiments.

Each function builds a :class:`matplotlib.figure.Figure` directly, without ``pyplot``, so
it neither selects nor switches matplotlib's backend (a notebook keeps its own), and
returns it; given a path, it also saves the figure there as PNG.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from mbrl_bound_plugin.tabular.gridworlds import GridWorld, rollout
from mbrl_bound_plugin.tabular.iteration import IterationResult

PathLike = str | os.PathLike[str]


def plot_bound_tracking(result: dict[str, Any], path: PathLike | None = None) -> Figure:
    """Plot ``log J``, the bound and VMBPO's objective against the iteration.

    Args:
        result: output of :func:`~mbrl_bound_plugin.tabular.experiments.run_bound_tracking`.
        path: PNG file to write, or ``None`` to only return the figure.

    Returns:
        The figure.
    """
    its = result["iterations"]
    x = np.arange(len(its))

    def col(key: str) -> np.ndarray:
        return np.array([np.nan if r[key] is None else r[key] for r in its])

    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    ax.plot(x, col("log_return"), "-o", ms=3, label="log J(π) (real MDP)")
    ax.plot(x, col("bound"), "-s", ms=3, label="MnM bound L(π, q)")
    ax.plot(x, col("vmbpo_objective"), "--^", ms=3, label="log VMBPO objective (r − KL in q)")
    ax.set_xlabel("MnM iteration")
    ax.set_ylabel("log return")
    ax.set_title("Exact tabular MnM, 10×10 gridworld: the bound stays below log J")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_risk(result: dict[str, float], path: PathLike | None = None) -> Figure:
    """Bar chart of the true returns of the three methods.

    Args:
        result: output of :func:`~mbrl_bound_plugin.tabular.experiments.run_risk`.
        path: PNG file to write, or ``None`` to only return the figure.

    Returns:
        The figure.
    """
    names = ["q_learning", "mnm", "vmbpo"]
    labels = ["Q-learning\n(policy iteration, r)", "MnM\n(log r, −KL, q)", "VMBPO\n(r − KL, q)"]
    vals = [result[n] for n in names]
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    bars = ax.bar(labels, vals, color=["tab:gray", "tab:blue", "tab:orange"])
    ax.bar_label(bars, fmt="%.1f")
    ax.set_ylabel("true discounted return J(π) from the start")
    ax.set_ylim(0, max(vals) * 1.15)
    ax.set_title("Risk gridworld: optimistic VMBPO takes the risky path")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


_INACCURATE_TITLES = {
    "mnm": "MnM, exact model",
    "mnm_aliased": "MnM, aliased model",
    "aliased_no_classifier": "aliased model, no classifier",
}


def plot_inaccurate_model(
    grid: GridWorld,
    runs: dict[str, IterationResult],
    result: dict[str, Any],
    path: PathLike | None = None,
) -> Figure:
    """The grid with each variant's 100-step real rollout of its final policy.

    Args:
        grid: the gridworld.
        runs: the runs per variant, from
            :func:`~mbrl_bound_plugin.tabular.experiments.inaccurate_model_runs`.
        result: output of
            :func:`~mbrl_bound_plugin.tabular.experiments.inaccurate_model_result` for
            those runs.
        path: PNG file to write, or ``None`` to only return the figure.

    Returns:
        The figure.
    """
    img = np.zeros((grid.n_rows, grid.n_cols))
    for w in grid.walls:
        img[w] = 1.0
    fig = Figure(figsize=(4.5 * len(runs), 5.6))
    axes = np.atleast_1d(fig.subplots(1, len(runs)))
    for ax, (name, run) in zip(axes, runs.items(), strict=True):
        ax.imshow(img, cmap="Greys", vmin=0, vmax=1.4, origin="upper")
        cells = np.array([grid.cell(s) for s in rollout(grid, run.policy, 100)])
        ax.plot(cells[:, 1], cells[:, 0], "-", color="tab:blue", lw=2)
        ax.plot(cells[-1, 1], cells[-1, 0], "o", color="tab:blue", ms=8)
        start = grid.cell(grid.mdp.start)
        ax.plot(start[1], start[0], "s", color="tab:green", ms=10)
        if grid.goal is not None:
            ax.plot(grid.goal[1], grid.goal[0], "*", color="tab:red", ms=16)
        r = result[name]
        title = _INACCURATE_TITLES.get(name, name)
        ax.set_title(f"{title}\nJ = {r['value']:.1f}, reaches goal: {r['reaches_goal']}")
        ax.set_xticks(range(0, grid.n_cols, 3))
        ax.set_yticks(range(0, grid.n_rows, 3))
        ax.set_xticks(np.arange(-0.5, grid.n_cols, 3), minor=True)
        ax.set_yticks(np.arange(-0.5, grid.n_rows, 3), minor=True)
        ax.grid(which="minor", color="tab:gray", alpha=0.4)
        ax.set_xlabel("column j")
        ax.set_ylabel("row i")
    handles = [
        Line2D([], [], color="tab:blue", lw=2, label="100-step real rollout"),
        Line2D([], [], color="tab:blue", marker="o", ls="", label="end of rollout"),
        Line2D([], [], color="tab:green", marker="s", ls="", label="start"),
        Line2D([], [], color="tab:red", marker="*", ms=12, ls="", label="goal (r = 100)"),
        Patch(color="0.3", label="wall"),
        Line2D([], [], color="tab:gray", alpha=0.4, label="3×3 aliasing blocks"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
    fig.suptitle("Inaccurate (aliased) model: the classifier term keeps MnM on real paths")
    fig.tight_layout(rect=(0, 0.13, 1, 0.94))
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
