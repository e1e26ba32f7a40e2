"""Return curves on a shared grid of environment steps: the common span, the AUC, the mean curve.

A run's return is linear between its logged rows (``episode_reward`` against
``env_step``). Several runs are compared on the span they all cover, from the largest
first ``env_step`` to the smallest last one; the grid is every step any of them logged in
that span, so each run's trapezoids on it are exact and no run is extrapolated.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from mbrl_bound_plugin.report.runs import RETURN_COL, STEP_COL, Run

Series = tuple[np.ndarray, np.ndarray]


def _sorted_series(runs: Sequence[Run]) -> list[Series]:
    """``(env_step, episode_reward)`` of each run, sorted by step (stable)."""
    series = []
    for r in runs:
        df = r.results.sort_values(STEP_COL, kind="stable")
        series.append((df[STEP_COL].to_numpy(float), df[RETURN_COL].to_numpy(float)))
    return series


def _span(series: Sequence[Series]) -> tuple[float, float]:
    return max(float(s[0]) for s, _ in series), min(float(s[-1]) for s, _ in series)


def common_span(runs: Sequence[Run]) -> tuple[float, float]:
    """The range of environment steps all the runs cover.

    Args:
        runs: runs, e.g. every run of one task.

    Returns:
        ``(largest first env_step, smallest last env_step)``; the first exceeds the
        second when the runs share no step.
    """
    return _span(_sorted_series(runs))


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
