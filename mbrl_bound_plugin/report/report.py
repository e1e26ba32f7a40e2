"""Multi-run tables and plots: ``mbrl-bound-report DIR``.

Reads every mbrl-style run folder under ``DIR`` (any folder holding a ``results.csv``
next to Hydra's ``.hydra/config.yaml``: single runs, multirun sweeps ``0/``, ``1/``,
..., runs made by hand with ``mbrl-bound -m ...``) and writes

- ``report.md``: per task and algorithm, for the final return and for the area under
  the return curve, the number of seeds, the mean, the interquartile mean and an
  interval; the paired difference of each algorithm against ``mbpo``, seed by seed; on
  tasks with a success threshold, success rates; the wall and CPU time per run, from
  the runs' ``wall_time.csv`` (:mod:`mbrl_bound_plugin.util.wall_time`); and the list of runs;
- ``curves.png``: return against environment steps, one line and band per algorithm,
  one panel per task;
- ``bound_diagnostics.png``: ``disc_accuracy`` and ``kl_estimate`` against environment
  steps for the runs of ``bound`` and its ablations, one row per task and arm (not
  written when there are none);
- ``sac_diagnostics.png``: SAC's entropy temperature, critic loss and minus its actor
  loss against SAC updates, from the ``train.csv`` of the MBPO family's runs (``mbpo``,
  ``bound`` and its ablations), one row per task, one line per run coloured by arm
  (not written when no run has one).

Definitions, per run (one seed):

- final return: the ``episode_reward`` of the last row of its ``results.csv``: the last
  evaluation for the MBPO family (``mbpo``, ``bound`` and its ablations), the last
  training episode for PETS (mbrl's PETS logs one row per episode);
- AUC, the area under the return curve: the mean return over training, that is the
  trapezoidal area under ``episode_reward`` against ``env_step`` (linear between the
  logged rows) divided by the width of the span. The span is the same for every run of
  a task, from the largest first ``env_step`` to the smallest last ``env_step`` among
  the task's runs (of every algorithm), so that the AUCs of a task compare; it is NaN
  when that span is empty or a single step.

Per task and algorithm, for both: the mean, the IQM (``scipy.stats.trim_mean(x, 0.25)``)
and, with at least :data:`MIN_SEEDS_FOR_INTERVAL` seeds, the 95% percentile bootstrap
interval of the mean over the seeds; with fewer seeds, too few for an interval, the
range ``[min, max]`` of the seeds instead, labelled as such.

Paired differences: every algorithm but ``mbpo`` and ``pets`` (``bound`` and its
ablations, which share MBPO's loop, so that a seed is a pair) against ``mbpo``, per
task, on the seeds both ran: the per-seed difference (algorithm minus mbpo) of the
final return and of the AUC, its mean, the same interval rule applied to the per-seed
differences (resampling the seeds' differences is the paired bootstrap), and how many
seeds the algorithm wins, ties and loses.

Success (tasks in :data:`SUCCESS_THRESHOLDS`): an episode succeeds when its return
exceeds the task's threshold. On the maze (``mbrl_bound_plugin.env.maze``) an episode lasts
``MAX_EPISODE_STEPS`` = 150 steps and never terminates; a step pays ``GOAL_REWARD`` = 1
inside the goal disc and ``STEP_REWARD`` = 0.01 elsewhere, so an episode that never
reaches the goal returns 1.5 and one that reaches it at least once returns at least
2.49; the threshold is their midpoint, computed from those constants. Reported per
algorithm: how many seeds' final episodes succeeded, the fraction of successful
episodes among the last quarter of each run's rows averaged over seeds, and how many
seeds succeeded at least once.

Runs of ``algorithm=mbpo_resumable`` (MBPO in this package's loop, which checkpoints and
resumes) are MBPO: they are listed, summarized and drawn as ``mbpo``.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import omegaconf
import pandas as pd
import scipy.stats
from matplotlib.figure import Figure

from mbrl_bound_plugin.env import maze
from mbrl_bound_plugin.errors import STOPPED_FILE, ReportError
from mbrl_bound_plugin.util import wall_time

PROG = "mbrl-bound-report"

STEP_COL = "env_step"
RETURN_COL = "episode_reward"
DIAGNOSTIC_COLS = ("disc_accuracy", "kl_estimate")
# SAC's training log (mbrl's train.csv, the MBPO family's runs) and what is drawn from it
SAC_LOG_FILE = "train.csv"
SAC_DIAGNOSTIC_COLS = ("alpha_value", "critic_loss", "actor_loss")

REPORT_FILE = "report.md"
CURVES_FILE = "curves.png"
DIAGNOSTICS_FILE = "bound_diagnostics.png"
SAC_DIAGNOSTICS_FILE = "sac_diagnostics.png"

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
TRIM = 0.25  # proportion cut at each end for the interquartile mean
MAX_LEGEND_ENTRIES = 12  # more bound runs on a task than this: no per-seed legend

# Fewer seeds than this: the report shows the range [min, max] of the seeds, not an
# interval (a bootstrap of 3 seeds is little more than their range).
MIN_SEEDS_FOR_INTERVAL = 5
INTERVAL_BOOTSTRAP = "bootstrap"  # kinds of interval, see seed_interval
INTERVAL_RANGE = "range"
# Paired differences: every algorithm but these two against BASELINE, seed by seed.
BASELINE = "mbpo"
NOT_PAIRED = ("mbpo", "pets")
# Two values within this relative distance (of the larger, or of 1) are a tie.
TIE_TOLERANCE = 1e-9
LAST_FRACTION = 0.25  # success rate over this last fraction of each run's rows

# The maze's episode returns: never in the goal, and in the goal for one step at least.
MAZE_FAILURE_RETURN = maze.MAX_EPISODE_STEPS * maze.STEP_REWARD
MAZE_LEAST_SUCCESS_RETURN = maze.GOAL_REWARD + (maze.MAX_EPISODE_STEPS - 1) * maze.STEP_REWARD
# Task name: an episode succeeds when its return is above this.
SUCCESS_THRESHOLDS: dict[str, float] = {
    maze.ENV_ID: (MAZE_FAILURE_RETURN + MAZE_LEAST_SUCCESS_RETURN) / 2,
}
# Task name: how its threshold was chosen, for the report.
SUCCESS_NOTES: dict[str, str] = {
    maze.ENV_ID: (
        f"{maze.MAX_EPISODE_STEPS} steps, no termination, reward {maze.GOAL_REWARD:g} per "
        f"step in the goal disc and {maze.STEP_REWARD:g} elsewhere: an episode that never "
        f"reaches the goal returns {MAZE_FAILURE_RETURN:.2f}, one that reaches it at least "
        f"once at least {MAZE_LEAST_SUCCESS_RETURN:.2f}; the threshold is their midpoint"
    ),
}

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
ALGORITHM_ORDER = ("bound", "bound_no_model_term", "bound_no_policy_term", "mbpo", "pets")
# Config names reported under another algorithm's name: the same algorithm.
ALGORITHM_ALIASES = {"mbpo_resumable": "mbpo"}


class RunFolderWarning(UserWarning):
    """Run folders skipped as unusable, or sharing task, algorithm and seed (listed)."""


@dataclass
class Run:
    """One run folder.

    Attributes:
        path: the folder holding ``results.csv``.
        algorithm: ``algorithm.name`` of its config (``bound``, ``mbpo``, ``pets``, ...),
            ``mbpo`` for ``mbpo_resumable`` (:data:`ALGORITHM_ALIASES`).
        task: the task name, e.g. ``InvertedPendulum-v5`` (see :func:`default_task_of`).
        seed: ``seed`` of its config.
        results: its ``results.csv``, rows with a missing ``env_step`` or
            ``episode_reward`` dropped, in logging order.
        stopped: why the run stopped before its budget, from its ``stopped.txt``
            (written by ``mbrl-bound`` on a NaN or inf); ``""`` if it did not.
        cost: its wall and CPU time, summed over the sessions of its ``wall_time.csv``
            (:func:`mbrl_bound_plugin.util.wall_time.read`); ``None`` without one (a run
            made by an older version, or not by the ``mbrl-bound`` command).
    """

    path: Path
    algorithm: str
    task: str
    seed: int
    results: pd.DataFrame
    stopped: str = ""
    cost: wall_time.Cost | None = None


# ----------------------------------------------------------------------------- reading


def default_task_of(cfg: omegaconf.DictConfig) -> str:
    """The task name of a run: ``overrides.env`` without mbrl's ``gym___`` prefix.

    When ``overrides.env`` is absent (the environment comes from ``overrides.env_cfg``),
    the last component of ``overrides.env_cfg._target_``.

    Args:
        cfg: the run's composed config (``.hydra/config.yaml``).

    Returns:
        The task name, e.g. ``InvertedPendulum-v5`` or ``CartPoleEnv``.

    Raises:
        ValueError: if the config has neither key.
    """
    env = omegaconf.OmegaConf.select(cfg, "overrides.env", default=None)
    if env is not None:
        return str(env).removeprefix("gym___")
    target = omegaconf.OmegaConf.select(cfg, "overrides.env_cfg._target_", default=None)
    if target is not None:
        return str(target).rsplit(".", 1)[-1]
    raise ValueError("neither overrides.env nor overrides.env_cfg._target_ in the config")


def _read_run(path: Path, task_of: Callable[[omegaconf.DictConfig], str]) -> tuple[Run | None, str]:
    """Reads one run folder; returns ``(run, "")`` or ``(None, why it is skipped)``."""
    config_file = path / ".hydra" / "config.yaml"
    if not config_file.is_file():
        return None, "no .hydra/config.yaml"
    try:
        cfg = omegaconf.OmegaConf.load(config_file)
    except Exception as e:  # any YAML or OmegaConf error: the file is unusable
        return None, f"unreadable .hydra/config.yaml ({type(e).__name__})"
    if not isinstance(cfg, omegaconf.DictConfig):
        return None, ".hydra/config.yaml is not a mapping"
    try:
        algorithm = omegaconf.OmegaConf.select(cfg, "algorithm.name", default=None)
        seed = omegaconf.OmegaConf.select(cfg, "seed", default=None)
        task = task_of(cfg)
    except Exception as e:  # a broken interpolation or a failing task_of
        return None, f"config: {e}".replace("\n", " ")
    if algorithm is None:
        return None, "no algorithm.name in the config"
    if not isinstance(seed, int) or isinstance(seed, bool):
        return None, f"seed in the config is not an integer: {seed!r}"
    try:
        results = pd.read_csv(path / "results.csv")
    except pd.errors.EmptyDataError:
        return None, "empty results.csv"
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        return None, f"unreadable results.csv ({type(e).__name__})"
    missing = [c for c in (STEP_COL, RETURN_COL) if c not in results.columns]
    if missing:
        return None, f"results.csv lacks {', '.join(missing)}"
    results = results.dropna(subset=[STEP_COL, RETURN_COL]).reset_index(drop=True)
    if results.empty:
        return None, "results.csv has no rows"
    algorithm = ALGORITHM_ALIASES.get(str(algorithm), str(algorithm))
    stopped_file = path / STOPPED_FILE
    stopped = ""
    if stopped_file.is_file():
        stopped = stopped_file.read_text(encoding="utf-8", errors="replace").strip() or "stopped"
    return Run(path, algorithm, str(task), seed, results, stopped, wall_time.read(path)), ""


def _algorithm_key(name: str) -> tuple[int, str]:
    """Sort key: in :data:`ALGORITHM_ORDER` first, then the others by name."""
    order = ALGORITHM_ORDER.index(name) if name in ALGORITHM_ORDER else len(ALGORITHM_ORDER)
    return order, name


def find_runs(
    root: str | Path,
    task_of: Callable[[omegaconf.DictConfig], str] | None = None,
) -> list[Run]:
    """Finds and reads every run folder (a folder holding ``results.csv``) under ``root``.

    Folders that cannot be used (an empty ``results.csv``, one without ``env_step`` or
    ``episode_reward``, no ``.hydra/config.yaml``, ...) are skipped with one
    :class:`RunFolderWarning` listing them and why. Runs sharing task, algorithm and
    seed are all kept (each counts as one seed), with one more warning listing them.

    Args:
        root: the directory to search, recursively.
        task_of: maps a run's composed config to its task name; ``None`` uses
            :func:`default_task_of`.

    Returns:
        The runs, sorted by task, algorithm (:data:`ALGORITHM_ORDER`, then by name),
        seed and path.

    Raises:
        ReportError: if ``root`` is not a directory, or holds no usable run.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise ReportError(f"{root} {what}")
    task_of = default_task_of if task_of is None else task_of
    folders = sorted({f.parent for f in root.rglob("results.csv") if f.is_file()})
    if not folders:
        raise ReportError(f"no run folder (a folder with a results.csv) under {root}")

    runs: list[Run] = []
    skipped: list[str] = []
    for folder in folders:
        run, why = _read_run(folder, task_of)
        if run is None:
            skipped.append(f"{folder} ({why})")
        else:
            runs.append(run)
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} run folder(s): {'; '.join(skipped)}",
            RunFolderWarning,
            stacklevel=2,
        )
    if not runs:
        raise ReportError(f"no usable run under {root}: all {len(skipped)} skipped")

    runs.sort(key=lambda r: (r.task, _algorithm_key(r.algorithm), r.seed, str(r.path)))
    counts: dict[tuple[str, str, int], int] = {}
    for r in runs:
        counts[(r.task, r.algorithm, r.seed)] = counts.get((r.task, r.algorithm, r.seed), 0) + 1
    repeated = [f"{a} on {t} seed {s} x{n}" for (t, a, s), n in counts.items() if n > 1]
    if repeated:
        warnings.warn(
            f"runs with the same task, algorithm and seed, each counted as a seed: "
            f"{'; '.join(repeated)}",
            RunFolderWarning,
            stacklevel=2,
        )
    return runs


# ------------------------------------------------------------------------- statistics


def final_return(run: Run) -> float:
    """The final return of a run: ``episode_reward`` of the last row of its results.

    Args:
        run: a run from :func:`find_runs`.

    Returns:
        The return.
    """
    return float(run.results[RETURN_COL].iloc[-1])


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (``scipy.stats.bootstrap``).

    Args:
        values: one value per seed.
        confidence: the confidence level, in (0, 1).
        n_resamples: the number of bootstrap resamples.
        seed: seed of the resampling, so the interval is reproducible.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for fewer than two values; ``(v, v)`` when all
        values equal ``v``.
    """
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return math.nan, math.nan
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    res = scipy.stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def summarize(
    runs: Iterable[Run],
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Statistics of the final return per task and algorithm.

    Args:
        runs: runs from :func:`find_runs`.
        confidence: level of the bootstrap confidence interval.
        n_resamples: number of bootstrap resamples.
        seed: seed of the bootstrap.

    Returns:
        One row per ``(task, algorithm)`` (the index, sorted by task, then as
        :data:`ALGORITHM_ORDER`, then others by name), with columns ``seeds`` (number
        of runs), ``mean``, ``iqm`` (``scipy.stats.trim_mean(x, 0.25)``), ``ci_low``,
        ``ci_high`` (the bootstrap interval of :func:`bootstrap_ci` whatever the number
        of seeds, NaN for one seed; the report uses :func:`summarize_metrics`, which
        gives the range below :data:`MIN_SEEDS_FOR_INTERVAL` seeds), ``final_step_min``
        and ``final_step_max`` (the ``env_step`` of the runs' last rows).
    """
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.task, r.algorithm), []).append(r)
    rows = []
    for (task, algorithm), group in groups.items():
        x = np.array([final_return(r) for r in group])
        steps = [float(r.results[STEP_COL].iloc[-1]) for r in group]
        low, high = bootstrap_ci(x, confidence, n_resamples, seed)
        rows.append(
            {
                "task": task,
                "algorithm": algorithm,
                "seeds": len(group),
                "mean": float(np.mean(x)),
                "iqm": float(scipy.stats.trim_mean(x, TRIM)),
                "ci_low": low,
                "ci_high": high,
                "final_step_min": min(steps),
                "final_step_max": max(steps),
            }
        )
    rows.sort(key=lambda row: (row["task"], _algorithm_key(row["algorithm"])))
    columns = ["seeds", "mean", "iqm", "ci_low", "ci_high", "final_step_min", "final_step_max"]
    if not rows:
        index = pd.MultiIndex.from_tuples([], names=["task", "algorithm"])
        return pd.DataFrame(columns=columns, index=index)
    return pd.DataFrame(rows).set_index(["task", "algorithm"])[columns]


def _sorted_series(runs: Sequence[Run]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(env_step, episode_reward)`` of each run, sorted by step (stable)."""
    series = []
    for r in runs:
        df = r.results.sort_values(STEP_COL, kind="stable")
        series.append((df[STEP_COL].to_numpy(float), df[RETURN_COL].to_numpy(float)))
    return series


def common_span(runs: Sequence[Run]) -> tuple[float, float]:
    """The range of environment steps all the runs cover.

    Args:
        runs: runs, e.g. every run of one task.

    Returns:
        ``(largest first env_step, smallest last env_step)``; the first exceeds the
        second when the runs share no step.
    """
    return _span(_sorted_series(runs))


def _span(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    return max(float(s[0]) for s, _ in series), min(float(s[-1]) for s, _ in series)


def _returns_on_grid(runs: Sequence[Run]) -> tuple[np.ndarray, np.ndarray]:
    """The grid of :func:`curve_on_grid` and each run's return on it (NaN outside the run)."""
    series = _sorted_series(runs)
    lo, hi = _span(series)
    if lo > hi:
        lo, hi = min(s[0] for s, _ in series), max(s[-1] for s, _ in series)
    grid = np.unique(np.concatenate([s for s, _ in series]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    ys = np.full((len(series), grid.size), np.nan)
    for i, (s, y) in enumerate(series):
        inside = (grid >= s[0]) & (grid <= s[-1])
        ys[i, inside] = np.interp(grid[inside], s, y)
    return grid, ys


def area_under_curves(runs: Sequence[Run]) -> tuple[np.ndarray, float, float]:
    """The AUC of each run: its mean return over the span that all the runs cover.

    The span is :func:`common_span` of ``runs``; each run's return is linear between its
    logged rows (as in :func:`curve_on_grid`, whose grid holds every run's steps in the
    span, so the trapezoids are exact for each run) and the trapezoidal area under it
    over the span is divided by the span's width.

    Args:
        runs: the runs to compare, e.g. every run of one task (all algorithms).

    Returns:
        ``(aucs, start, end)``: one AUC per run, in the order of ``runs`` (all NaN when
        ``start >= end``: no span to average over), and the span.
    """
    if not runs:
        return np.array([]), math.nan, math.nan
    lo, hi = common_span(runs)
    if not lo < hi:
        return np.full(len(runs), math.nan), lo, hi
    grid, ys = _returns_on_grid(runs)
    areas = ((ys[:, 1:] + ys[:, :-1]) / 2 * np.diff(grid)).sum(axis=1)
    return areas / (hi - lo), lo, hi


def run_table(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: its final return and its AUC over its task's common span.

    The span is common to the task's runs that did not stop on an error
    (:attr:`Run.stopped`); those that did have no AUC (NaN), unless all of them did.

    Args:
        runs: runs from :func:`find_runs`.

    Returns:
        Columns ``task``, ``algorithm``, ``seed``, ``path``, ``final`` (see
        :func:`final_return`), ``auc`` (see :func:`area_under_curves`, over the task's
        runs that did not stop on an error; NaN for those that did), ``auc_start`` and
        ``auc_end`` (the task's span), ``final_step`` (``env_step`` of the last row),
        ``first_step`` and ``last_step`` (the smallest and largest ``env_step``),
        ``stopped`` (:attr:`Run.stopped`), ``wall_s``, ``cpu_s`` and ``sessions``
        (:attr:`Run.cost`; NaN without one), in the order of ``runs``.
    """
    rows = [
        {
            "task": r.task,
            "algorithm": r.algorithm,
            "seed": r.seed,
            "path": r.path,
            "final": final_return(r),
            "auc": math.nan,
            "auc_start": math.nan,
            "auc_end": math.nan,
            "final_step": float(r.results[STEP_COL].iloc[-1]),
            "first_step": float(r.results[STEP_COL].min()),
            "last_step": float(r.results[STEP_COL].max()),
            "stopped": r.stopped,
            "wall_s": r.cost.wall_s if r.cost else math.nan,
            "cpu_s": r.cost.cpu_s if r.cost else math.nan,
            "sessions": r.cost.sessions if r.cost else math.nan,
        }
        for r in runs
    ]
    for task in dict.fromkeys(r.task for r in runs):
        index = [i for i, r in enumerate(runs) if r.task == task]
        # a run stopped by an error does not set the span (it would cut every run short)
        # and has no AUC over it; if all stopped, they all count
        counted = [i for i in index if not runs[i].stopped] or index
        aucs, start, end = area_under_curves([runs[i] for i in counted])
        for i in index:
            rows[i].update(auc_start=start, auc_end=end)
        for i, auc in zip(counted, aucs, strict=True):
            rows[i]["auc"] = float(auc)
    columns = ["task", "algorithm", "seed", "path", "final", "auc"]
    columns += ["auc_start", "auc_end", "final_step", "first_step", "last_step", "stopped"]
    columns += ["wall_s", "cpu_s", "sessions"]
    return pd.DataFrame(rows, columns=columns)


def seed_interval(
    values: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    min_seeds: int = MIN_SEEDS_FOR_INTERVAL,
) -> tuple[float, float, str]:
    """An interval for the mean of per-seed values, or their range when they are few.

    Args:
        values: one value per seed (NaNs are dropped).
        confidence: level of the bootstrap interval.
        n_resamples: number of bootstrap resamples.
        seed: seed of the bootstrap.
        min_seeds: the fewest values that get a bootstrap interval.

    Returns:
        ``(low, high, kind)``: with ``min_seeds`` values or more, the percentile
        bootstrap interval of the mean (:func:`bootstrap_ci`) and
        :data:`INTERVAL_BOOTSTRAP`; with fewer, ``(min, max)`` and
        :data:`INTERVAL_RANGE`; ``(nan, nan, "")`` with no value.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, ""
    if x.size < min_seeds:
        return float(x.min()), float(x.max()), INTERVAL_RANGE
    low, high = bootstrap_ci(x, confidence, n_resamples, seed)
    return low, high, INTERVAL_BOOTSTRAP


def _describe(
    values: Sequence[float] | np.ndarray,
    prefix: str,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> dict[str, float | int | str]:
    """``{prefix}n``, ``_mean``, ``_iqm``, ``_low``, ``_high``, ``_interval`` of values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    low, high, kind = seed_interval(x, confidence, n_resamples, seed)
    empty = x.size == 0
    return {
        f"{prefix}n": int(x.size),
        f"{prefix}mean": math.nan if empty else float(np.mean(x)),
        f"{prefix}iqm": math.nan if empty else float(scipy.stats.trim_mean(x, TRIM)),
        f"{prefix}low": low,
        f"{prefix}high": high,
        f"{prefix}interval": kind,
    }


def _indexed(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """Rows sorted by task and algorithm, indexed by them (an empty frame for no row)."""
    rows = sorted(rows, key=lambda row: (row["task"], _algorithm_key(row["algorithm"])))
    if not rows:
        index = pd.MultiIndex.from_tuples([], names=["task", "algorithm"])
        return pd.DataFrame(columns=columns, index=index)
    return pd.DataFrame(rows).set_index(["task", "algorithm"])[columns]


def summarize_metrics(
    runs: Sequence[Run],
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Final return and AUC per task and algorithm, with an interval or the range.

    Args:
        runs: runs from :func:`find_runs`.
        confidence: level of the bootstrap interval.
        n_resamples: number of bootstrap resamples.
        seed: seed of the bootstrap.

    Returns:
        One row per ``(task, algorithm)`` (the index, sorted as :func:`summarize`'s),
        with, for ``m`` in ``final`` and ``auc``: ``m_n`` (seeds with a value),
        ``m_mean``, ``m_iqm``, ``m_low``, ``m_high`` and ``m_interval`` (as
        :func:`seed_interval`: a bootstrap interval from
        :data:`MIN_SEEDS_FOR_INTERVAL` seeds, else the range); ``auc_start`` and
        ``auc_end`` (the task's span), ``final_step_min`` and ``final_step_max``.
    """
    table = run_table(runs)
    rows = []
    for (task, algorithm), group in table.groupby(["task", "algorithm"], sort=False):
        row: dict = {"task": task, "algorithm": algorithm}
        for metric in ("final", "auc"):
            row.update(_describe(group[metric], f"{metric}_", confidence, n_resamples, seed))
        row.update(
            auc_start=float(group["auc_start"].iloc[0]),
            auc_end=float(group["auc_end"].iloc[0]),
            final_step_min=float(group["final_step"].min()),
            final_step_max=float(group["final_step"].max()),
        )
        rows.append(row)
    stats = ["n", "mean", "iqm", "low", "high", "interval"]
    columns = [f"{m}_{c}" for m in ("final", "auc") for c in stats]
    return _indexed(rows, [*columns, "auc_start", "auc_end", "final_step_min", "final_step_max"])


def _outcome(a: float, b: float) -> int:
    """1 if ``a`` beats ``b``, -1 if it loses, 0 for a tie (:data:`TIE_TOLERANCE`)."""
    if abs(a - b) <= TIE_TOLERANCE * max(abs(a), abs(b), 1.0):
        return 0
    return 1 if a > b else -1


# Columns of paired_differences.
PAIR_COLUMNS = (
    *("task", "algorithm", "seed"),
    *("final", "baseline_final", "final_diff"),
    *("auc", "baseline_auc", "auc_diff"),
)


def paired_differences(runs: Sequence[Run], baseline: str = BASELINE) -> pd.DataFrame:
    """Per task and seed, each algorithm's final return and AUC minus the baseline's.

    The algorithms compared are all but :data:`NOT_PAIRED`, on the tasks where the
    baseline ran. A seed is paired when the algorithm and the baseline each have exactly
    one run of it on the task; other seeds (no partner, or a repeated run) are left out.

    Args:
        runs: runs from :func:`find_runs`.
        baseline: the algorithm subtracted.

    Returns:
        One row per pair, sorted by task, algorithm and seed: ``task``, ``algorithm``,
        ``seed``, ``final``, ``baseline_final``, ``final_diff``, ``auc``,
        ``baseline_auc``, ``auc_diff``.
    """
    pairs, _ = _pairing(run_table(runs), baseline)
    return pd.DataFrame(pairs, columns=list(PAIR_COLUMNS))


def _seed_list(seeds: Iterable[int]) -> str:
    """``seed 3`` or ``seeds 3, 7``."""
    seeds = sorted(seeds)
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def _pairing(table: pd.DataFrame, baseline: str) -> tuple[list[dict], dict[tuple, str]]:
    """The pairs of :func:`paired_differences` and, per (task, algorithm), who is left out."""
    pairs: list[dict] = []
    left_out: dict[tuple[str, str], str] = {}
    keys = sorted(
        {(t, a) for t, a in zip(table["task"], table["algorithm"], strict=True)},
        key=lambda k: (k[0], _algorithm_key(k[1])),
    )
    for task, algorithm in keys:
        base = table[(table["task"] == task) & (table["algorithm"] == baseline)]
        if algorithm in NOT_PAIRED or algorithm == baseline or base.empty:
            continue
        mine = table[(table["task"] == task) & (table["algorithm"] == algorithm)]
        repeated = {int(s) for s in mine["seed"][mine["seed"].duplicated()]}
        repeated |= {int(s) for s in base["seed"][base["seed"].duplicated()]}
        mine_seeds, base_seeds = set(map(int, mine["seed"])), set(map(int, base["seed"]))
        notes = []
        if alone := mine_seeds - base_seeds - repeated:
            notes.append(f"{_seed_list(alone)}: no {baseline} run")
        if alone := base_seeds - mine_seeds - repeated:
            notes.append(f"{baseline} {_seed_list(alone)}: no {algorithm} run")
        if repeated:
            notes.append(f"{_seed_list(repeated)}: repeated runs")
        left_out[(task, algorithm)] = "; ".join(notes)
        for s in sorted(mine_seeds & base_seeds - repeated):
            a = mine[mine["seed"] == s].iloc[0]
            b = base[base["seed"] == s].iloc[0]
            pairs.append(
                {
                    "task": task,
                    "algorithm": algorithm,
                    "seed": int(s),
                    "final": a["final"],
                    "baseline_final": b["final"],
                    "final_diff": a["final"] - b["final"],
                    "auc": a["auc"],
                    "baseline_auc": b["auc"],
                    "auc_diff": a["auc"] - b["auc"],
                }
            )
    return pairs, left_out


def summarize_paired(
    runs: Sequence[Run],
    baseline: str = BASELINE,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Mean paired difference against the baseline, its interval, wins, ties, losses.

    Args:
        runs: runs from :func:`find_runs`.
        baseline: the algorithm subtracted (see :func:`paired_differences`).
        confidence: level of the bootstrap interval.
        n_resamples: number of bootstrap resamples.
        seed: seed of the bootstrap.

    Returns:
        One row per ``(task, algorithm)`` compared (the index): ``pairs`` (seeds
        paired), ``left_out`` (the seeds not paired and why, ``""`` for none) and, for
        ``m`` in ``final`` and ``auc``: ``m_n``, ``m_mean``, ``m_iqm``, ``m_low``,
        ``m_high``, ``m_interval`` of the per-seed differences (as
        :func:`summarize_metrics`; resampling the seeds' differences makes the
        bootstrap a paired one), and ``m_wins``, ``m_ties``, ``m_losses`` (seeds where
        the algorithm is above, level with, below the baseline).
    """
    pairs, left_out = _pairing(run_table(runs), baseline)
    frame = pd.DataFrame(pairs, columns=list(PAIR_COLUMNS))
    rows = []
    for (task, algorithm), notes in left_out.items():
        mine = frame[(frame["task"] == task) & (frame["algorithm"] == algorithm)]
        row: dict = {"task": task, "algorithm": algorithm, "pairs": len(mine), "left_out": notes}
        for metric in ("final", "auc"):
            diffs = mine[f"{metric}_diff"]
            row.update(_describe(diffs, f"{metric}_", confidence, n_resamples, seed))
            outcomes = [
                _outcome(a, b)
                for a, b in zip(mine[metric], mine[f"baseline_{metric}"], strict=True)
                if not (math.isnan(a) or math.isnan(b))
            ]
            row[f"{metric}_wins"] = outcomes.count(1)
            row[f"{metric}_ties"] = outcomes.count(0)
            row[f"{metric}_losses"] = outcomes.count(-1)
        rows.append(row)
    stats = ["n", "mean", "iqm", "low", "high", "interval", "wins", "ties", "losses"]
    columns = ["pairs", *[f"{m}_{c}" for m in ("final", "auc") for c in stats], "left_out"]
    return _indexed(rows, columns)


def is_success(returns: Sequence[float] | np.ndarray, threshold: float) -> np.ndarray:
    """Which episode returns count as a success: those above ``threshold``.

    Args:
        returns: episode returns.
        threshold: the task's threshold (:data:`SUCCESS_THRESHOLDS`).

    Returns:
        A boolean array, one per return.
    """
    return np.asarray(returns, dtype=float) > threshold


def last_rows(n_rows: int, fraction: float = LAST_FRACTION) -> int:
    """How many rows make the last ``fraction`` of a run: ``ceil(fraction * n)``, at least 1.

    Args:
        n_rows: the run's number of rows.
        fraction: the fraction, in (0, 1].

    Returns:
        The number of rows, between 1 and ``n_rows`` (1 when ``n_rows`` is 0).
    """
    return max(1, math.ceil(fraction * n_rows))


def success_rates(
    runs: Sequence[Run], thresholds: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Success rates per algorithm on the tasks that have a success threshold.

    Each row of ``results.csv`` is one episode (an evaluation episode for the MBPO
    family, with ``num_eval_episodes: 1``; a training episode for PETS); it succeeds
    when its ``episode_reward`` is above the task's threshold (:func:`is_success`).

    Args:
        runs: runs from :func:`find_runs`.
        thresholds: task name to threshold; ``None`` uses :data:`SUCCESS_THRESHOLDS`.

    Returns:
        One row per ``(task, algorithm)`` (the index) of the tasks in ``thresholds``:
        ``threshold``, ``seeds``, ``final_successes`` (seeds whose last row succeeded),
        ``last_rate`` (per seed, the fraction of successes among its last
        :func:`last_rows` rows, then the mean over seeds) and ``ever_successes`` (seeds
        with at least one successful row).
    """
    thresholds = SUCCESS_THRESHOLDS if thresholds is None else thresholds
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        if r.task in thresholds:
            groups.setdefault((r.task, r.algorithm), []).append(r)
    rows = []
    for (task, algorithm), group in groups.items():
        threshold = float(thresholds[task])
        successes = [is_success(r.results[RETURN_COL], threshold) for r in group]
        rows.append(
            {
                "task": task,
                "algorithm": algorithm,
                "threshold": threshold,
                "seeds": len(group),
                "final_successes": sum(bool(s[-1]) for s in successes),
                "last_rate": float(np.mean([s[-last_rows(s.size) :].mean() for s in successes])),
                "ever_successes": sum(bool(s.any()) for s in successes),
            }
        )
    columns = ["threshold", "seeds", "final_successes", "last_rate", "ever_successes"]
    return _indexed(rows, columns)


# ----------------------------------------------------------------------------- report


def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"


def _steps(low: float, high: float) -> str:
    return f"{low:g}" if low == high else f"{low:g}–{high:g}"


def _shown_path(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve())) or "."
    except ValueError:
        return str(path.resolve())


def _signed(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:+.2f}"


def _interval(low: float, high: float, kind: str, pct: str) -> str:
    """A table cell: ``95% bootstrap [low, high]``, ``range [min, max]`` or ``n/a``."""
    if kind == INTERVAL_BOOTSTRAP:
        return f"{pct} bootstrap [{_num(low)}, {_num(high)}]"
    if kind == INTERVAL_RANGE:
        return f"range [{_num(low)}, {_num(high)}]"
    return "n/a"


def _interval_notes(kinds: Iterable[str], what: str, count: str, pct: str) -> list[str]:
    """What the interval cells of a table mean, for the kinds it shows.

    Args:
        kinds: the tables' interval kinds (:func:`seed_interval`).
        what: the quantity, e.g. ``final return``.
        count: the column that holds n, e.g. ``seeds``.
        pct: the confidence level, e.g. ``95%``.

    Returns:
        A paragraph and a blank line, or nothing for no interval.
    """
    kinds = set(kinds)
    notes = []
    if INTERVAL_BOOTSTRAP in kinds:
        notes.append(
            f"{pct} bootstrap: {pct} percentile bootstrap interval of the mean {what} over "
            f"the n seeds (n: the {count} column, n ≥ {MIN_SEEDS_FOR_INTERVAL})."
        )
    if INTERVAL_RANGE in kinds:
        notes.append(
            f"range: [min, max] of the {what} over the n seeds (n: the {count} column), not "
            f"an interval: fewer than {MIN_SEEDS_FOR_INTERVAL} seeds are too few for one."
        )
    return [" ".join(notes), ""] if notes else []


def _table(header: Sequence[str], align: str, rows: Iterable[Sequence[str]]) -> list[str]:
    """Markdown table lines; ``align`` has one ``l`` or ``r`` per column."""
    lines = [f"| {' | '.join(header)} |"]
    lines.append("|" + "|".join("---" if a == "l" else "---:" for a in align) + "|")
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return [*lines, ""]


def _preamble(pct: str, n_resamples: int, seed: int, thresholds: Mapping[str, float]) -> list[str]:
    """The method, at the top of report.md."""
    lines = [
        "Per run (one seed), from its `results.csv`:",
        "",
        f"- **final return**: `{RETURN_COL}` of the last row (the last evaluation for the "
        "MBPO family: mbpo, bound and its ablations; the last training episode for pets);",
        "- **AUC**, the area under the return curve: the mean return over training, i.e. "
        f"the trapezoidal area under `{RETURN_COL}` against `{STEP_COL}` (linear between "
        "logged rows) divided by the width of the span. The span is the same for all the "
        "runs of a task, whatever their algorithm: from the largest first to the smallest "
        f"last `{STEP_COL}` among them (given under each task, with the runs that set it).",
        "",
        "Per task and algorithm, over its n seeds:",
        "",
        "- **mean** and **IQM**, the interquartile mean (`scipy.stats.trim_mean(x, "
        f"{TRIM})`: it cuts floor({TRIM} n) seeds at each end, so it equals the mean below "
        "4 seeds); the best mean of a table in bold (when there is more than one "
        "algorithm);",
        f"- **interval**: with n ≥ {MIN_SEEDS_FOR_INTERVAL} (`MIN_SEEDS_FOR_INTERVAL`), "
        f"`{pct} bootstrap [low, high]`, the {pct} percentile bootstrap interval of the "
        f"mean over the n seeds (`scipy.stats.bootstrap`, {n_resamples} resamples, seed "
        f"{seed}; with 5 to 10 seeds it tends to be narrower than a {pct} interval "
        "should be); with fewer seeds, too few for an interval, `range [min, max]`: the "
        "lowest and highest value of the seeds, not an interval;",
        f"- **env steps**: `{STEP_COL}` of the runs' last rows.",
        "",
        f"**Paired difference against {BASELINE}**: for every algorithm but "
        f"{' and '.join(NOT_PAIRED)}, seed by seed, the algorithm's run minus {BASELINE}'s "
        "run with the same seed, of the final return and of the AUC, on the seeds that "
        "both ran exactly once (the others are listed as left out); the mean difference, "
        "the interval above applied to the per-seed differences (the bootstrap resamples "
        "seeds, keeping each seed's pair together) and wins/ties/losses: the seeds where "
        f"the algorithm is above, level with, below {BASELINE}.",
        "",
    ]
    if thresholds:
        lines += [
            "**Success**, on tasks with a success threshold: an episode (a row of "
            "`results.csv`) succeeds when its return is above the threshold. Final "
            "episode: the seeds whose last row succeeded, of n; last quarter of rows: per "
            f"seed, the fraction of successes among its last ceil({LAST_FRACTION} × rows) "
            "rows, averaged over the seeds; ever: the seeds with at least one successful "
            "row, of n.",
            "",
        ]
    return lines


def _interval_cell(row: pd.Series, metric: str, pct: str) -> str:
    """The interval cell of ``metric`` (``final`` or ``auc``) in a summary row."""
    return _interval(row[f"{metric}_low"], row[f"{metric}_high"], row[f"{metric}_interval"], pct)


def _who(runs: pd.DataFrame) -> str:
    """``pets seed 0`` for one run, ``bound, mbpo (10 runs)`` for several."""
    if len(runs) == 1:
        return f"{runs['algorithm'].iloc[0]} seed {runs['seed'].iloc[0]}"
    algorithms = sorted(set(runs["algorithm"]), key=_algorithm_key)
    return f"{', '.join(algorithms)} ({len(runs)} runs)"


def _span_lines(runs: pd.DataFrame) -> list[str]:
    """The task's AUC span and the runs that set it (``runs``: its rows of run_table)."""
    start, end = runs["auc_start"].iloc[0], runs["auc_end"].iloc[0]
    if (runs["stopped"] == "").any():  # the span is the unstopped runs' (see run_table)
        runs = runs[runs["stopped"] == ""]
    limits = []
    if runs["first_step"].nunique() > 1:
        limits.append(f"the latest to start: {_who(runs[runs['first_step'] == start])}")
    if runs["last_step"].nunique() > 1:
        limits.append(f"the first to end: {_who(runs[runs['last_step'] == end])}")
    n_runs = f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
    if start < end:
        text = f"AUC span: env steps {start:g}–{end:g}, common to the task's {n_runs}"
    else:
        text = (
            f"AUC: n/a, the task's {n_runs} share no span of env steps (largest first step "
            f"{start:g}, smallest last step {end:g})"
        )
    if limits:
        text += f"; {', '.join(limits)}"
    return [f"{text}.", ""]


def _stopped_lines(runs: pd.DataFrame) -> list[str]:
    """The task's runs that stopped on an error before their budget (``runs``: its rows of
    run_table), each with its last step and the error; nothing if none did."""
    stopped = runs[runs["stopped"] != ""]
    if stopped.empty:
        return []
    auc = (
        "the span is theirs, as no run of the task went on"
        if len(stopped) == len(runs)
        else "they have no AUC: the span is the other runs'"
    )
    lines = [
        f"**Stopped before the end of their budget** ({len(stopped)} of {len(runs)} runs; "
        f"their rows end there, their final return is their last evaluation, and {auc}):",
        "",
    ]
    for r in stopped.itertuples():
        lines.append(f"- {r.algorithm} seed {r.seed}, after env step {r.final_step:g}: {r.stopped}")
    return [*lines, ""]


def _metric_lines(stats: pd.DataFrame, pct: str) -> list[str]:
    """The final return and AUC tables of a task (``stats``: its summarize_metrics rows)."""
    lines = []
    for metric, title in (("final", "Final return"), ("auc", "AUC (mean return over the span)")):
        best = stats[f"{metric}_mean"].max()
        rows = []
        for (_, algorithm), row in stats.iterrows():
            mean = _num(row[f"{metric}_mean"])
            if row[f"{metric}_mean"] == best and len(stats) > 1:
                mean = f"**{mean}**"
            n = str(int(row[f"{metric}_n"]))  # (a run stopped by an error has no AUC)
            cells = [algorithm, n, mean, _num(row[f"{metric}_iqm"])]
            cells.append(_interval_cell(row, metric, pct))
            if metric == "final":
                cells.append(_steps(row["final_step_min"], row["final_step_max"]))
            rows.append(cells)
        header = ["algorithm", "seeds", "mean", "IQM", "interval"]
        if metric == "final":
            header, align = [*header, "env steps"], "lrrrlr"
        else:
            align = "lrrrl"
        what = "final return" if metric == "final" else "AUC"
        lines += [f"### {title}", "", *_table(header, align, rows)]
        lines += _interval_notes(stats[f"{metric}_interval"], what, "seeds", pct)
    return lines


def _minutes(seconds: float) -> str:
    return "" if math.isnan(seconds) else f"{seconds / 60:.1f}"


def _cost_lines(runs: pd.DataFrame) -> list[str]:
    """The task's cost per run and algorithm (``runs``: its rows of run_table), from the
    runs' ``wall_time.csv``; nothing when none has one."""
    if runs["wall_s"].isna().all():
        return []
    rows = []
    for algorithm, sub in runs.groupby("algorithm", sort=False):
        timed = sub.dropna(subset=["wall_s"])
        if timed.empty:
            rows.append([str(algorithm), f"0 of {len(sub)}", "", "", ""])
            continue
        wall, cpu = timed["wall_s"], timed["cpu_s"]
        wall_range = f"{_minutes(wall.min())}–{_minutes(wall.max())}"
        rows.append(
            [str(algorithm), f"{len(timed)} of {len(sub)}", _minutes(wall.median()), wall_range]
            + [_minutes(cpu.median())]
        )
    header = ["algorithm", "runs timed", "wall min, median", "wall min, range", "CPU min, median"]
    return [
        "### Cost per run",
        "",
        *_table(header, "lrrrr", rows),
        "From each run's `wall_time.csv` (written by `mbrl-bound`), summed over the "
        "sessions of a resumed run (work redone after its last checkpoint included); runs "
        "without one are not counted. Wall time depends on what else ran beside the run; "
        "CPU time is its process's, all threads.",
        "",
    ]


def _paired_lines(paired: pd.DataFrame, pairs: pd.DataFrame, pct: str) -> list[str]:
    """A task's paired differences: summary, left-out seeds, the per-seed table."""
    lines = [f"### Paired difference against {BASELINE}", ""]
    header = ["algorithm", "pairs"]
    for name in ("final return", "AUC"):
        header += [f"{name}: mean difference", f"{name}: interval", f"{name}: wins/ties/losses"]
    rows = []
    for (_, algorithm), row in paired.iterrows():
        cells = [algorithm, str(int(row["pairs"]))]
        for m in ("final", "auc"):
            cells += [_signed(row[f"{m}_mean"]), _interval_cell(row, m, pct)]
            cells.append(f"{row[f'{m}_wins']}/{row[f'{m}_ties']}/{row[f'{m}_losses']}")
        rows.append(cells)
    lines += _table(header, "lrrlrrlr", rows)
    kinds = [*paired["final_interval"], *paired["auc_interval"]]
    lines += _interval_notes(kinds, f"difference algorithm − {BASELINE}", "pairs", pct)
    left_out = [f"{a}: {notes}" for (_, a), notes in paired["left_out"].items() if notes]
    if left_out:
        lines += [f"Left out of the pairs: {'; '.join(left_out)}.", ""]
    if not pairs.empty:
        header = ["algorithm", "seed", "final return", f"{BASELINE} final return", "difference"]
        header += ["AUC", f"{BASELINE} AUC", "difference"]
        rows = [
            [p.algorithm, str(p.seed), _num(p.final), _num(p.baseline_final)]
            + [_signed(p.final_diff), _num(p.auc), _num(p.baseline_auc), _signed(p.auc_diff)]
            for p in pairs.itertuples()
        ]
        lines += [f"Per seed, algorithm − {BASELINE}:", "", *_table(header, "lrrrrrrr", rows)]
    return lines


def _success_lines(task: str, success: pd.DataFrame) -> list[str]:
    """A task's success rates (``success``: its success_rates rows)."""
    threshold = success["threshold"].iloc[0]
    lines = [f"### Success (episode return > {threshold:.4g})", ""]
    if task in SUCCESS_NOTES:
        lines += [f"{SUCCESS_NOTES[task]}.", ""]
    rows = [
        [
            algorithm,
            str(int(row["seeds"])),
            f"{int(row['final_successes'])}/{int(row['seeds'])}",
            _num(row["last_rate"]),
            f"{int(row['ever_successes'])}/{int(row['seeds'])}",
        ]
        for (_, algorithm), row in success.iterrows()
    ]
    header = ["algorithm", "seeds", "final episode", "last quarter of rows", "ever"]
    return [*lines, *_table(header, "lrrrr", rows)]


def write_report(
    runs: Sequence[Run],
    out_dir: str | Path,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    success_thresholds: Mapping[str, float] | None = None,
) -> Path:
    """Writes ``out_dir/report.md``: the method, one section per task, the runs used.

    A task's section has the runs that stopped on an error before their budget (a NaN:
    see :attr:`Run.stopped`), the final return and AUC tables (:func:`summarize_metrics`),
    the paired differences against :data:`BASELINE` (:func:`summarize_paired` and
    :func:`paired_differences`) when it has baseline runs and runs to compare with them,
    the success rates (:func:`success_rates`) when it has a success threshold, and the
    cost per run when its runs have a ``wall_time.csv``.

    Args:
        runs: runs from :func:`find_runs`.
        out_dir: the directory to write to (created if needed).
        confidence: level of the bootstrap intervals.
        n_resamples: number of bootstrap resamples.
        seed: seed of the bootstrap.
        success_thresholds: task name to success threshold; ``None`` uses
            :data:`SUCCESS_THRESHOLDS`.

    Returns:
        The path of ``report.md``.

    Raises:
        ReportError: if ``runs`` is empty.
    """
    if not runs:
        raise ReportError("no runs to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    thresholds = SUCCESS_THRESHOLDS if success_thresholds is None else success_thresholds
    per_run = run_table(runs)
    stats = summarize_metrics(runs, confidence, n_resamples, seed)
    paired = summarize_paired(runs, BASELINE, confidence, n_resamples, seed)
    pairs = paired_differences(runs, BASELINE)
    success = success_rates(runs, thresholds)
    pct = f"{confidence * 100:g}%"

    lines = ["# Comparison of algorithms", ""]
    lines += _preamble(pct, n_resamples, seed, thresholds)
    for task, sub in stats.groupby(level="task", sort=False):
        lines += [f"## {task}", ""]
        lines += _span_lines(per_run[per_run["task"] == task])
        lines += _stopped_lines(per_run[per_run["task"] == task])
        lines += _metric_lines(sub, pct)
        task_paired = paired[paired.index.get_level_values("task") == task]
        if not task_paired.empty:
            lines += _paired_lines(task_paired, pairs[pairs["task"] == task], pct)
        task_success = success[success.index.get_level_values("task") == task]
        if not task_success.empty:
            lines += _success_lines(str(task), task_success)
        lines += _cost_lines(per_run[per_run["task"] == task])

    lines += ["## Runs", ""]
    rows = [
        [
            r.task,
            r.algorithm,
            str(r.seed),
            _num(r.final),
            _num(r.auc),
            f"{r.final_step:g}" + (" (stopped)" if r.stopped else ""),
            _minutes(r.wall_s),
            f"`{_shown_path(r.path, out_dir)}`",
        ]
        for r in per_run.itertuples()
    ]
    header = ["task", "algorithm", "seed", "final return", "AUC", "env steps", "wall min"]
    lines += _table([*header, "folder"], "llrrrrrl", rows)

    path = out_dir / REPORT_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ plots


def algorithm_colors(algorithms: Iterable[str]) -> dict[str, str]:
    """Fixed colors (:data:`ALGORITHM_COLORS`), the others by sorted name.

    Args:
        algorithms: algorithm names.

    Returns:
        A matplotlib color per name.
    """
    colors = {a: ALGORITHM_COLORS[a] for a in set(algorithms) if a in ALGORITHM_COLORS}
    others = sorted(set(algorithms) - set(ALGORITHM_COLORS))
    for i, a in enumerate(others):
        colors[a] = OTHER_COLORS[i % len(OTHER_COLORS)]
    return colors


def curve_on_grid(runs: Sequence[Run]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The return of several runs on a shared grid of environment steps.

    The grid is every step any of the runs logged within the range all of them cover
    (largest first step to smallest last step); each run is interpolated linearly onto
    it (``numpy.interp``). Runs logged at the same steps (MBPO, the bound) are thus used
    as logged, runs logged at irregular steps (PETS, once per episode) are averaged point
    by point, and no run is extrapolated. If the runs share no range, the grid spans all
    of them and each point uses the runs that cover it.

    Args:
        runs: runs of one algorithm on one task.

    Returns:
        ``(steps, mean, low, high)``: the grid and, at each point, the mean, minimum and
        maximum of the return over the runs.
    """
    grid, ys = _returns_on_grid(runs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return grid, np.nanmean(ys, axis=0), np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)


def _panel_grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def plot_curves(runs: Sequence[Run], path: str | Path) -> Path:
    """Writes a PNG of return against environment steps, one panel per task.

    Per algorithm, a line for the mean over seeds and a band from the minimum to the
    maximum over seeds, on a shared grid of steps (see :func:`curve_on_grid`).

    Args:
        runs: runs from :func:`find_runs`.
        path: the PNG to write (its directory is created if needed).

    Returns:
        ``path``.

    Raises:
        ReportError: if ``runs`` is empty.
    """
    if not runs:
        raise ReportError("no runs to plot")
    path = Path(path)
    tasks = sorted({r.task for r in runs})
    colors = algorithm_colors(r.algorithm for r in runs)
    nrows, ncols = _panel_grid(len(tasks))
    fig = Figure(figsize=(5.5 * ncols, 4.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, task in zip(axes, tasks, strict=False):
        task_runs = [r for r in runs if r.task == task]
        for algorithm in sorted({r.algorithm for r in task_runs}, key=_algorithm_key):
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def diagnostic_rows(runs: Sequence[Run]) -> list[tuple[str, str, list[Run]]]:
    """The runs :func:`plot_bound_diagnostics` draws, grouped by (task, algorithm).

    A run is drawn when it logged a discriminator (a ``disc_accuracy`` or ``kl_estimate``
    value): ``bound`` and its ablations alike. Groups in task order, then in the
    report's algorithm order.
    """
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        cols = [c for c in DIAGNOSTIC_COLS if c in r.results.columns]
        if cols and r.results[cols].notna().any().any():
            groups.setdefault((r.task, r.algorithm), []).append(r)
    keys = sorted(groups, key=lambda k: (k[0], _algorithm_key(k[1])))
    return [(task, algorithm, groups[task, algorithm]) for task, algorithm in keys]


def plot_bound_diagnostics(runs: Sequence[Run], path: str | Path) -> Path | None:
    """Writes a PNG of ``disc_accuracy`` and ``kl_estimate`` over steps for bound's arms.

    One row of two panels per task and arm (:func:`diagnostic_rows`: ``bound`` and its
    ablations; tasks have different step scales), one line per seed, with a legend up to
    ``MAX_LEGEND_ENTRIES`` seeds; the accuracy panel has a dashed line at 0.5 (the
    discriminator cannot tell model from real transitions). Rows where a value is NaN
    (before the discriminator's first update) are left out.

    Args:
        runs: runs from :func:`find_runs`; only those with a discriminator's diagnostics
            are drawn.
        path: the PNG to write (its directory is created if needed).

    Returns:
        ``path``, or ``None`` (nothing written) when there is no such run.
    """
    rows = diagnostic_rows(runs)
    if not rows:
        return None
    path = Path(path)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def read_sac_log(run: Run) -> pd.DataFrame | None:
    """SAC's training log of ``run``: mbrl's ``train.csv`` (a row per ``log_frequency_agent``
    SAC updates, ``step`` the number of updates made).

    Returns:
        The log, or ``None`` when the run has none (PETS), it cannot be read, or it lacks
        ``step`` or a column of :data:`SAC_DIAGNOSTIC_COLS`.
    """
    try:
        log = pd.read_csv(run.path / SAC_LOG_FILE)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None  # as _read_run treats an unreadable results.csv
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
        runs: runs from :func:`find_runs`; those with a SAC log (:func:`read_sac_log`)
            are drawn.
        path: the PNG to write (its directory is created if needed).

    Returns:
        ``path``, or ``None`` (nothing written) when no run has a SAC log.
    """
    logs = [(r, log) for r in runs if (log := read_sac_log(r)) is not None]
    if not logs:
        return None
    path = Path(path)
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
            key=lambda rl: (_algorithm_key(rl[0].algorithm), rl[0].seed),
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


# -------------------------------------------------------------------------------- CLI


def make_report(
    root: str | Path,
    out_dir: str | Path | None = None,
    task_of: Callable[[omegaconf.DictConfig], str] | None = None,
    success_thresholds: Mapping[str, float] | None = None,
) -> list[Path]:
    """Finds the runs under ``root`` and writes the report and its plots.

    Args:
        root: the directory of run folders.
        out_dir: where to write; ``None`` writes into ``root``.
        task_of: task name of a run's config; ``None`` uses :func:`default_task_of`.
        success_thresholds: task name to success threshold (names as ``task_of``
            gives them); ``None`` uses :data:`SUCCESS_THRESHOLDS`.

    Returns:
        The paths written: ``report.md``, ``curves.png`` and, when there are bound
        runs, ``bound_diagnostics.png``; when a run has SAC's ``train.csv``,
        ``sac_diagnostics.png``.

    Raises:
        ReportError: as :func:`find_runs`, or if ``out_dir`` cannot be created.
    """
    runs = find_runs(root, task_of)
    out = Path(root if out_dir is None else out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create {out}: {e.strerror or e}") from e
    written = [
        write_report(runs, out, success_thresholds=success_thresholds),
        plot_curves(runs, out / CURVES_FILE),
    ]
    for plot, name in (
        (plot_bound_diagnostics, DIAGNOSTICS_FILE),
        (plot_sac_diagnostics, SAC_DIAGNOSTICS_FILE),
    ):
        if (written_plot := plot(runs, out / name)) is not None:
            written.append(written_plot)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """The ``mbrl-bound-report DIR [--out OUT_DIR]`` command.

    Prints each path written, one a line, and skipped run folders as warnings on
    stderr; bad input is one line on stderr and exit code 2.

    Args:
        argv: the arguments after the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success (as the process exit code).

    Raises:
        SystemExit: code 2 on a :class:`ReportError` or bad arguments.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tables and plots of the mbrl run folders under DIR: report.md, "
        "curves.png, bound_diagnostics.png and sac_diagnostics.png.",
    )
    parser.add_argument("dir", metavar="DIR", help="directory searched for run folders")
    parser.add_argument("--out", metavar="OUT_DIR", help="where to write (default: DIR)")
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunFolderWarning)
        try:
            written = make_report(args.dir, args.out)
        except ReportError as e:
            for w in caught:
                print(f"{PROG}: warning: {w.message}", file=sys.stderr)
            print(f"{PROG}: error: {e}", file=sys.stderr)
            sys.exit(2)
    for w in caught:
        print(f"{PROG}: warning: {w.message}", file=sys.stderr)
    for p in written:
        print(p)
    if all(p.name != DIAGNOSTICS_FILE for p in written):
        print(f"no bound runs: {DIAGNOSTICS_FILE} not written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
