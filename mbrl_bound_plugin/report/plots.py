"""The report's figures, with plain matplotlib (``Figure``, no pyplot state).

- ``curves.png``: return against environment steps, one line and band per algorithm,
  one panel per task;
- ``bound_diagnostics.png``: ``disc_accuracy`` and ``kl_estimate`` against environment
  steps for the runs of ``bound`` and its ablations, one row per task and arm;
- ``sac_diagnostics.png``: SAC's entropy temperature, critic loss and minus its actor
  loss against SAC updates, from the MBPO family's ``train.csv``, one row per task.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from mbrl_bound_plugin.errors import ReportError
from mbrl_bound_plugin.report.curves import curve_on_grid
from mbrl_bound_plugin.report.runs import STEP_COL, Run, algorithm_key

CURVES_FILE = "curves.png"
DIAGNOSTICS_FILE = "bound_diagnostics.png"
SAC_DIAGNOSTICS_FILE = "sac_diagnostics.png"

DIAGNOSTIC_COLS = ("disc_accuracy", "kl_estimate")
# SAC's training log (mbrl's train.csv, the MBPO family's runs) and what is drawn from it
SAC_LOG_FILE = "train.csv"
SAC_DIAGNOSTIC_COLS = ("alpha_value", "critic_loss", "actor_loss")
MAX_LEGEND_ENTRIES = 12  # more bound runs on a task than this: no per-seed legend

# Fixed colors, so an algorithm has the same color in every panel and every report.
ALGORITHM_COLORS = {
    "bound": "tab:red",
    "bound_no_model_term": "tab:orange",
    "bound_no_policy_term": "tab:brown",
    "mbpo": "tab:blue",
    "pets": "tab:green",
}
OTHER_COLORS = (  # none of ALGORITHM_COLORS
    "tab:purple",
    "tab:pink",
    "tab:gray",
    "tab:olive",
    "tab:cyan",
)


def algorithm_colors(algorithms: Iterable[str]) -> dict[str, str]:
    """Fixed colors (:data:`ALGORITHM_COLORS`), the others by sorted name.

    Args:
        algorithms: algorithm names.

    Returns:
        A matplotlib color per name.
    """
    algorithms = set(algorithms)
    colors = {a: ALGORITHM_COLORS[a] for a in algorithms if a in ALGORITHM_COLORS}
    others = sorted(algorithms - set(ALGORITHM_COLORS))
    for i, a in enumerate(others):
        colors[a] = OTHER_COLORS[i % len(OTHER_COLORS)]
    return colors


def _panel_grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_curves(runs: Sequence[Run], path: str | Path) -> Path:
    """Writes a PNG of return against environment steps, one panel per task.

    Per algorithm, a line for the mean over seeds and a band from the minimum to the
    maximum over seeds, on a shared grid of steps
    (see :func:`~mbrl_bound_plugin.report.curves.curve_on_grid`).

    Args:
        runs: runs from :func:`~mbrl_bound_plugin.report.runs.find_runs`.
        path: the PNG to write (its directory is created if needed).

    Returns:
        ``path``.

    Raises:
        ReportError: if ``runs`` is empty.
    """
    if not runs:
        raise ReportError("no runs to plot")
    tasks = sorted({r.task for r in runs})
    colors = algorithm_colors(r.algorithm for r in runs)
    nrows, ncols = _panel_grid(len(tasks))
    fig = Figure(figsize=(5.5 * ncols, 4.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, task in zip(axes, tasks, strict=False):
        task_runs = [r for r in runs if r.task == task]
        for algorithm in sorted({r.algorithm for r in task_runs}, key=algorithm_key):
            group = [r for r in task_runs if r.algorithm == algorithm]
            steps, mean, low, high = curve_on_grid(group)
            color = colors[algorithm]
            marker = "o" if steps.size == 1 else None
            ax.plot(steps, mean, color=color, marker=marker, label=f"{algorithm} (n={len(group)})")
            ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
        ax.set_title(task)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("episode return")
        ax.grid(alpha=0.3)
        ax.legend(title="line: mean, band: min–max over seeds", fontsize="small")
    for ax in axes[len(tasks) :]:
        ax.set_visible(False)
    return _save(fig, Path(path))


def diagnostic_rows(runs: Sequence[Run]) -> list[tuple[str, str, list[Run]]]:
    """The runs :func:`plot_bound_diagnostics` draws, grouped by (task, algorithm).

    A run is drawn when it logged a discriminator (a ``disc_accuracy`` or ``kl_estimate``
    value): ``bound`` and its ablations alike.

    Args:
        runs: runs from :func:`~mbrl_bound_plugin.report.runs.find_runs`.

    Returns:
        ``(task, algorithm, runs)`` groups, in task order, then in the report's
        algorithm order.
    """
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        cols = [c for c in DIAGNOSTIC_COLS if c in r.results.columns]
        if cols and r.results[cols].notna().any().any():
            groups.setdefault((r.task, r.algorithm), []).append(r)
    keys = sorted(groups, key=lambda k: (k[0], algorithm_key(k[1])))
    return [(task, algorithm, groups[task, algorithm]) for task, algorithm in keys]


def plot_bound_diagnostics(runs: Sequence[Run], path: str | Path) -> Path | None:
    """Writes a PNG of ``disc_accuracy`` and ``kl_estimate`` over steps for bound's arms.

    One row of two panels per task and arm (:func:`diagnostic_rows`: ``bound`` and its
    ablations; tasks have different step scales), one line per seed, with a legend up to
    ``MAX_LEGEND_ENTRIES`` seeds; the accuracy panel has a dashed line at 0.5 (the
    discriminator cannot tell model from real transitions). Rows where a value is NaN
    (before the discriminator's first update) are left out.

    Args:
        runs: runs from :func:`~mbrl_bound_plugin.report.runs.find_runs`; only those
            with a discriminator's diagnostics are drawn.
        path: the PNG to write (its directory is created if needed).

    Returns:
        ``path``, or ``None`` (nothing written) when there is no such run.
    """
    rows = diagnostic_rows(runs)
    if not rows:
        return None
    fig = Figure(figsize=(12, 3.8 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for (ax_acc, ax_kl), (task, algorithm, arm_runs) in zip(axes, rows, strict=True):
        for r in arm_runs:
            for ax, col in ((ax_acc, "disc_accuracy"), (ax_kl, "kl_estimate")):
                if col in r.results.columns:
                    df = r.results[[STEP_COL, col]].dropna()
                    ax.plot(df[STEP_COL], df[col], label=f"seed {r.seed}", marker=".", ms=3)
        line = ax_acc.axhline(0.5, color="black", linestyle="--", linewidth=1)
        ax_acc.legend([line], ["0.5: indistinguishable"], fontsize="small", loc="lower left")
        ax_acc.set_ylim(-0.02, 1.02)
        ax_acc.set_title(f"{task}, {algorithm}\ndiscriminator held-out accuracy")
        ax_acc.set_ylabel("disc_accuracy")
        ax_kl.set_title(f"{task}, {algorithm}\nKL(model || real) estimate, -mean logit C")
        ax_kl.set_ylabel("kl_estimate")
        for ax in (ax_acc, ax_kl):
            ax.set_xlabel("environment steps")
            ax.grid(alpha=0.3)
        if len(ax_kl.lines) <= MAX_LEGEND_ENTRIES:
            ax_kl.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:  # a legend this long would squeeze the panels to nothing
            ax_kl.set_title(f"{task}, {algorithm}\nKL estimate ({len(ax_kl.lines)} runs)")
    fig.suptitle("bound's arms: discriminator diagnostics")
    return _save(fig, Path(path))


def read_sac_log(run: Run) -> pd.DataFrame | None:
    """SAC's training log of ``run``: mbrl's ``train.csv`` (a row per ``log_frequency_agent``
    SAC updates, ``step`` the number of updates made).

    Args:
        run: a run from :func:`~mbrl_bound_plugin.report.runs.find_runs`.

    Returns:
        The log, or ``None`` when the run has none (PETS), it cannot be read, or it lacks
        ``step`` or a column of :data:`SAC_DIAGNOSTIC_COLS`.
    """
    try:
        log = pd.read_csv(run.path / SAC_LOG_FILE)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None  # as an unreadable results.csv is treated
    if log.empty or any(c not in log.columns for c in ("step", *SAC_DIAGNOSTIC_COLS)):
        return None
    return log


def plot_sac_diagnostics(runs: Sequence[Run], path: str | Path) -> Path | None:
    """Writes a PNG of SAC's training statistics over SAC updates, for every arm with them.

    One row per task of three panels: the entropy temperature ``alpha_value``, the critic
    loss (log scale) and minus the actor loss (about the critic's soft value of the
    policy's actions); one line per run, coloured by arm (:func:`algorithm_colors`), so
    that an arm whose critic or temperature drifts away from MBPO's stands out.

    Args:
        runs: runs from :func:`~mbrl_bound_plugin.report.runs.find_runs`; those with a
            SAC log (:func:`read_sac_log`) are drawn.
        path: the PNG to write (its directory is created if needed).

    Returns:
        ``path``, or ``None`` (nothing written) when no run has a SAC log.
    """
    logs = [(r, log) for r in runs if (log := read_sac_log(r)) is not None]
    if not logs:
        return None
    tasks = sorted({r.task for r, _ in logs})
    colors = algorithm_colors(r.algorithm for r, _ in logs)
    panels = (
        ("alpha_value", "entropy temperature alpha", 1.0),
        ("critic_loss", "critic loss", 1.0),
        ("actor_loss", "minus actor loss (about Q of the policy's actions)", -1.0),
    )
    fig = Figure(figsize=(15, 3.8 * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), len(panels), squeeze=False)
    for row, task in zip(axes, tasks, strict=True):
        task_logs = sorted(
            ((r, log) for r, log in logs if r.task == task),
            key=lambda rl: (algorithm_key(rl[0].algorithm), rl[0].seed),
        )
        for ax, (col, title, sign) in zip(row, panels, strict=True):
            labelled = set()
            for r, log in task_logs:
                label = None if r.algorithm in labelled else r.algorithm
                labelled.add(r.algorithm)
                ax.plot(log["step"], sign * log[col], color=colors[r.algorithm], label=label, lw=1)
            ax.set_title(f"{task}\n{title}")
            ax.set_xlabel("SAC updates")
            ax.grid(alpha=0.3)
        row[1].set_yscale("log")
        row[0].legend(title="a line per seed", fontsize="small")
    fig.suptitle("SAC's training statistics (train.csv)")
    return _save(fig, Path(path))
