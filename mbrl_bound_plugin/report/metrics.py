"""The report's statistics, on pandas: per-run numbers, per-algorithm summaries, pairs, success.

Per run (one seed): the final return (``episode_reward`` of the last row of its
``results.csv``) and the AUC (:func:`mbrl_bound_plugin.report.curves.area_under_curves`
over the span common to its task's runs). Per task and algorithm: the mean, the IQM
(``scipy.stats.trim_mean(x, 0.25)``) and, with at least :data:`MIN_SEEDS_FOR_INTERVAL`
seeds, the percentile bootstrap interval of the mean; with fewer, the range of the seeds.
Paired differences: each algorithm but :data:`NOT_PAIRED` against :data:`BASELINE`, seed by
seed (a merge on task and seed). Success rates on the tasks of :data:`SUCCESS_THRESHOLDS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.stats

from mbrl_bound_plugin.env import maze
from mbrl_bound_plugin.report.curves import area_under_curves
from mbrl_bound_plugin.report.runs import (
    RETURN_COL,
    STEP_COL,
    Run,
    sort_by_task_and_algorithm,
)

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
TRIM = 0.25  # proportion cut at each end for the interquartile mean

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
# (the maze's versions differ in their noise only: one threshold)
SUCCESS_THRESHOLDS: dict[str, float] = {
    env_id: (MAZE_FAILURE_RETURN + MAZE_LEAST_SUCCESS_RETURN) / 2
    for env_id in (maze.ENV_ID, maze.ENV_ID_V1)
}
# Task name: how its threshold was chosen, for the report.
SUCCESS_NOTES: dict[str, str] = dict.fromkeys(
    (maze.ENV_ID, maze.ENV_ID_V1),
    (
        f"{maze.MAX_EPISODE_STEPS} steps, no termination, reward {maze.GOAL_REWARD:g} per "
        f"step in the goal disc and {maze.STEP_REWARD:g} elsewhere: an episode that never "
        f"reaches the goal returns {MAZE_FAILURE_RETURN:.2f}, one that reaches it at least "
        f"once at least {MAZE_LEAST_SUCCESS_RETURN:.2f}; the threshold is their midpoint"
    ),
)

GROUP = ["task", "algorithm"]
RUN_COLUMNS = (
    *("task", "algorithm", "seed", "path", "final", "auc", "auc_start", "auc_end"),
    *("final_step", "first_step", "last_step", "stopped", "wall_s", "cpu_s", "sessions"),
)
# Columns of paired_differences.
PAIR_COLUMNS = (
    *("task", "algorithm", "seed"),
    *("final", "baseline_final", "final_diff"),
    *("auc", "baseline_auc", "auc_diff"),
)
STATS = ("n", "mean", "iqm", "low", "high", "interval")
OUTCOMES = ("wins", "ties", "losses")


def final_return(run: Run) -> float:
    """The final return of a run: ``episode_reward`` of the last row of its results.

    Args:
        run: a run from :func:`~mbrl_bound_plugin.report.runs.find_runs`.

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


def _describe(values: pd.Series, prefix: str, boot: tuple[float, int, int]) -> dict:
    """``{prefix}n``, ``_mean``, ``_iqm``, ``_low``, ``_high``, ``_interval`` of the values
    that are not NaN; ``boot``: confidence, resamples and seed of the bootstrap."""
    x = values.dropna().to_numpy(float)
    low, high, kind = seed_interval(x, *boot)
    empty = x.size == 0
    stats = (
        x.size,
        math.nan if empty else float(np.mean(x)),
        math.nan if empty else float(scipy.stats.trim_mean(x, TRIM)),
        *(low, high, kind),
    )
    return {f"{prefix}{name}": value for name, value in zip(STATS, stats, strict=True)}


def _indexed(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` sorted by task and algorithm, indexed by them, with ``columns``."""
    if frame.empty:
        index = pd.MultiIndex.from_tuples([], names=GROUP)
        return pd.DataFrame(columns=list(columns), index=index)
    return sort_by_task_and_algorithm(frame).set_index(GROUP)[list(columns)]


def _per_algorithm(rows: list[dict], columns: Sequence[str]) -> pd.DataFrame:
    """Rows of ``task``, ``algorithm`` and ``columns``, as :func:`_indexed` frames them."""
    return _indexed(pd.DataFrame(rows, columns=[*GROUP, *columns]), columns)


def run_table(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: its final return and its AUC over its task's common span.

    The span is common to the task's runs that did not stop on an error
    (:attr:`Run.stopped`); those that did have no AUC (NaN), unless all of them did.

    Args:
        runs: runs from :func:`~mbrl_bound_plugin.report.runs.find_runs`.

    Returns:
        Columns ``task``, ``algorithm``, ``seed``, ``path``, ``final`` (see
        :func:`final_return`), ``auc`` (see :func:`area_under_curves`, over the task's
        runs that did not stop on an error; NaN for those that did), ``auc_start`` and
        ``auc_end`` (the task's span), ``final_step`` (``env_step`` of the last row),
        ``first_step`` and ``last_step`` (the smallest and largest ``env_step``),
        ``stopped`` (:attr:`Run.stopped`), ``wall_s``, ``cpu_s`` and ``sessions``
        (:attr:`Run.cost`; NaN without one), in the order of ``runs``.
    """
    steps = [r.results[STEP_COL] for r in runs]
    unknown = np.full(len(runs), math.nan)  # set per task below
    table = pd.DataFrame(
        {
            "task": [r.task for r in runs],
            "algorithm": [r.algorithm for r in runs],
            "seed": [r.seed for r in runs],
            "path": [r.path for r in runs],
            "final": [final_return(r) for r in runs],
            "auc": unknown,
            "auc_start": unknown,
            "auc_end": unknown,
            "final_step": [float(s.iloc[-1]) for s in steps],
            "first_step": [float(s.min()) for s in steps],
            "last_step": [float(s.max()) for s in steps],
            "stopped": [r.stopped for r in runs],
            "wall_s": [r.cost.wall_s if r.cost else math.nan for r in runs],
            "cpu_s": [r.cost.cpu_s if r.cost else math.nan for r in runs],
            "sessions": [r.cost.sessions if r.cost else math.nan for r in runs],
        },
        columns=list(RUN_COLUMNS),
    )
    for _, task in table.groupby("task", sort=False):
        # a run stopped by an error does not set the span (it would cut every run short)
        # and has no AUC over it; if all stopped, they all count
        counted = task[task["stopped"] == ""] if (task["stopped"] == "").any() else task
        aucs, start, end = area_under_curves([runs[i] for i in counted.index])
        table.loc[task.index, "auc_start"] = start
        table.loc[task.index, "auc_end"] = end
        table.loc[counted.index, "auc"] = aucs
    return table


def summarize(
    runs: Sequence[Run],
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Statistics of the final return per task and algorithm.

    Args:
        runs: runs from :func:`~mbrl_bound_plugin.report.runs.find_runs`.
        confidence: level of the bootstrap confidence interval.
        n_resamples: number of bootstrap resamples.
        seed: seed of the bootstrap.

    Returns:
        One row per ``(task, algorithm)`` (the index, sorted by task, then as
        :data:`~mbrl_bound_plugin.report.runs.ALGORITHM_ORDER`, then others by name),
        with columns ``seeds`` (number of runs), ``mean``, ``iqm``
        (``scipy.stats.trim_mean(x, 0.25)``), ``ci_low``, ``ci_high`` (the bootstrap
        interval of :func:`bootstrap_ci` whatever the number of seeds, NaN for one seed;
        the report uses :func:`summarize_metrics`, which gives the range below
        :data:`MIN_SEEDS_FOR_INTERVAL` seeds), ``final_step_min`` and ``final_step_max``
        (the ``env_step`` of the runs' last rows).
    """
    rows = []
    for (task, algorithm), group in run_table(runs).groupby(GROUP, sort=False):
        x = group["final"].to_numpy(float)
        low, high = bootstrap_ci(x, confidence, n_resamples, seed)
        stats = (len(x), float(np.mean(x)), float(scipy.stats.trim_mean(x, TRIM)), low, high)
        steps = (group["final_step"].min(), group["final_step"].max())
        rows.append((task, algorithm, *stats, *steps))
    columns = ["seeds", "mean", "iqm", "ci_low", "ci_high", "final_step_min", "final_step_max"]
    return _per_algorithm(rows, columns)


def summarize_metrics(
    runs: Sequence[Run],
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Final return and AUC per task and algorithm, with an interval or the range.

    Args:
        runs: runs from :func:`~mbrl_bound_plugin.report.runs.find_runs`.
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
    boot = (confidence, n_resamples, seed)
    rows = []
    for (task, algorithm), group in run_table(runs).groupby(GROUP, sort=False):
        row: dict = {"task": task, "algorithm": algorithm}
        for metric in ("final", "auc"):
            row.update(_describe(group[metric], f"{metric}_", boot))
        row.update(
            auc_start=float(group["auc_start"].iloc[0]),
            auc_end=float(group["auc_end"].iloc[0]),
            final_step_min=float(group["final_step"].min()),
            final_step_max=float(group["final_step"].max()),
        )
        rows.append(row)
    columns = [f"{m}_{c}" for m in ("final", "auc") for c in STATS]
    return _per_algorithm(
        rows, [*columns, "auc_start", "auc_end", "final_step_min", "final_step_max"]
    )


def _seed_list(seeds: set[int]) -> str:
    """``seed 3`` or ``seeds 3, 7``."""
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, sorted(seeds)))}"


def _left_out(mine: pd.DataFrame, theirs: pd.DataFrame, algorithm: str, baseline: str) -> str:
    """The seeds of one algorithm (``mine``) and of the baseline (``theirs``) on a task that
    are not paired, and why: no partner, or a seed run more than once on either side."""
    repeated = set(mine["seed"][mine["seed"].duplicated()])
    repeated |= set(theirs["seed"][theirs["seed"].duplicated()])
    notes = []
    if alone := set(mine["seed"]) - set(theirs["seed"]) - repeated:
        notes.append(f"{_seed_list(alone)}: no {baseline} run")
    if alone := set(theirs["seed"]) - set(mine["seed"]) - repeated:
        notes.append(f"{baseline} {_seed_list(alone)}: no {algorithm} run")
    if repeated:
        notes.append(f"{_seed_list(repeated)}: repeated runs")
    return "; ".join(notes)


def _pairing(table: pd.DataFrame, baseline: str) -> tuple[pd.DataFrame, pd.Series]:
    """The pairs of :func:`paired_differences` and, per (task, algorithm) compared (the
    index, sorted), the seeds left out and why."""
    base = table[table["algorithm"] == baseline]
    compared = table["task"].isin(base["task"])
    compared &= ~table["algorithm"].isin([*NOT_PAIRED, baseline])
    compared = sort_by_task_and_algorithm(table[compared])
    left_out = pd.Series(
        {
            (task, algorithm): _left_out(mine, base[base["task"] == task], algorithm, baseline)
            for (task, algorithm), mine in compared.groupby(GROUP, sort=False)
        },
        dtype=object,
    )
    # a seed run more than once, by the algorithm or the baseline, has no partner
    once = table[~table.duplicated(["task", "algorithm", "seed"], keep=False)]
    columns = ["task", "algorithm", "seed", "final", "auc"]
    pairs = once.loc[once.index.isin(compared.index), columns].merge(
        once.loc[once["algorithm"] == baseline, ["task", "seed", "final", "auc"]],
        on=["task", "seed"],
        suffixes=("", "_baseline"),
    )
    pairs = pairs.rename(
        columns={"final_baseline": "baseline_final", "auc_baseline": "baseline_auc"}
    )
    pairs["final_diff"] = pairs["final"] - pairs["baseline_final"]
    pairs["auc_diff"] = pairs["auc"] - pairs["baseline_auc"]
    pairs = sort_by_task_and_algorithm(pairs.sort_values("seed", kind="stable"))
    return pairs[list(PAIR_COLUMNS)].reset_index(drop=True), left_out


def paired_differences(runs: Sequence[Run], baseline: str = BASELINE) -> pd.DataFrame:
    """Per task and seed, each algorithm's final return and AUC minus the baseline's.

    The algorithms compared are all but :data:`NOT_PAIRED`, on the tasks where the
    baseline ran. A seed is paired when the algorithm and the baseline each have exactly
    one run of it on the task; other seeds (no partner, or a repeated run) are left out.

    Args:
        runs: runs from :func:`~mbrl_bound_plugin.report.runs.find_runs`.
        baseline: the algorithm subtracted.

    Returns:
        One row per pair, sorted by task, algorithm and seed: ``task``, ``algorithm``,
        ``seed``, ``final``, ``baseline_final``, ``final_diff``, ``auc``,
        ``baseline_auc``, ``auc_diff``.
    """
    return _pairing(run_table(runs), baseline)[0]


def _outcomes(mine: pd.Series, theirs: pd.Series, prefix: str) -> dict[str, int]:
    """``{prefix}wins``, ``ties``, ``losses``: the pairs where ``mine`` is above, level with
    (:data:`TIE_TOLERANCE`), below ``theirs``; pairs with a NaN count in none."""
    both = mine.notna() & theirs.notna()
    a, b = mine[both], theirs[both]
    scale = np.maximum(np.maximum(a.abs(), b.abs()), 1.0)
    tie = (a - b).abs() <= TIE_TOLERANCE * scale
    counts = (~tie & (a > b)).sum(), tie.sum(), (~tie & (a < b)).sum()
    return {f"{prefix}{name}": int(n) for name, n in zip(OUTCOMES, counts, strict=True)}


def summarize_paired(
    runs: Sequence[Run],
    baseline: str = BASELINE,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Mean paired difference against the baseline, its interval, wins, ties, losses.

    Args:
        runs: runs from :func:`~mbrl_bound_plugin.report.runs.find_runs`.
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
    boot = (confidence, n_resamples, seed)
    rows = []
    for (task, algorithm), notes in left_out.items():
        mine = pairs[(pairs["task"] == task) & (pairs["algorithm"] == algorithm)]
        row: dict = {"task": task, "algorithm": algorithm, "pairs": len(mine), "left_out": notes}
        for m in ("final", "auc"):
            row.update(_describe(mine[f"{m}_diff"], f"{m}_", boot))
            row.update(_outcomes(mine[m], mine[f"baseline_{m}"], f"{m}_"))
        rows.append(row)
    stats = [*STATS, *OUTCOMES]
    columns = ["pairs", *[f"{m}_{c}" for m in ("final", "auc") for c in stats], "left_out"]
    return _per_algorithm(rows, columns)


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
        runs: runs from :func:`~mbrl_bound_plugin.report.runs.find_runs`.
        thresholds: task name to threshold; ``None`` uses :data:`SUCCESS_THRESHOLDS`.

    Returns:
        One row per ``(task, algorithm)`` (the index) of the tasks in ``thresholds``:
        ``threshold``, ``seeds``, ``final_successes`` (seeds whose last row succeeded),
        ``last_rate`` (per seed, the fraction of successes among its last
        :func:`last_rows` rows, then the mean over seeds) and ``ever_successes`` (seeds
        with at least one successful row).
    """
    thresholds = SUCCESS_THRESHOLDS if thresholds is None else thresholds
    per_run = []
    for r in runs:
        if r.task in thresholds:
            threshold = float(thresholds[r.task])
            s = is_success(r.results[RETURN_COL], threshold)
            last = float(s[-last_rows(s.size) :].mean())
            per_run.append((r.task, r.algorithm, threshold, bool(s[-1]), last, bool(s.any())))
    columns = ["threshold", "seeds", "final_successes", "last_rate", "ever_successes"]
    if not per_run:
        return _indexed(pd.DataFrame(columns=[*GROUP, *columns]), columns)
    per_run = pd.DataFrame(per_run, columns=[*GROUP, "threshold", "final", "last", "ever"])
    rates = per_run.groupby(GROUP, sort=False).agg(
        threshold=("threshold", "first"),
        seeds=("final", "size"),
        final_successes=("final", "sum"),
        last_rate=("last", "mean"),
        ever_successes=("ever", "sum"),
    )
    return _indexed(rates.reset_index(), columns)
