"""Multi-run tables and plots: ``mbrl-bound-report DIR``.

Reads every mbrl-style run folder under ``DIR`` (any folder holding a ``results.csv``
next to Hydra's ``.hydra/config.yaml``: single runs, multirun sweeps ``0/``, ``1/``,
..., runs made by hand with ``mbrl-bound -m ...``) and writes

- ``report.md``: per task and algorithm, the number of seeds and the final return's
  mean, interquartile mean and 95% bootstrap confidence interval of the mean;
- ``curves.png``: return against environment steps, one line and band per algorithm,
  one panel per task;
- ``bound_diagnostics.png``: ``disc_accuracy`` and ``kl_estimate`` against environment
  steps for the ``algorithm=bound`` runs (not written when there are none).

The final return of a run is the ``episode_reward`` of the last row of its
``results.csv``: the last evaluation for MBPO and the bound, the last training episode
for PETS (mbrl's PETS logs one row per episode). Runs of ``algorithm=mbpo_resumable``
(MBPO in this package's loop, which checkpoints and resumes) are MBPO: they are listed,
summarized and drawn as ``mbpo``.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import omegaconf
import pandas as pd
import scipy.stats
from matplotlib.figure import Figure

from mbrl_bound_plugin.errors import ReportError

PROG = "mbrl-bound-report"

STEP_COL = "env_step"
RETURN_COL = "episode_reward"
DIAGNOSTIC_COLS = ("disc_accuracy", "kl_estimate")

REPORT_FILE = "report.md"
CURVES_FILE = "curves.png"
DIAGNOSTICS_FILE = "bound_diagnostics.png"

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
TRIM = 0.25  # proportion cut at each end for the interquartile mean
MAX_LEGEND_ENTRIES = 12  # more bound runs on a task than this: no per-seed legend

# Fixed colors, so an algorithm has the same color in every panel and every report.
ALGORITHM_COLORS = {"bound": "tab:red", "mbpo": "tab:blue", "pets": "tab:green"}
OTHER_COLORS = (
    "tab:purple",
    "tab:orange",
    "tab:brown",
    "tab:pink",
    "tab:gray",
    "tab:olive",
    "tab:cyan",
)
ALGORITHM_ORDER = ("bound", "mbpo", "pets")
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
    """

    path: Path
    algorithm: str
    task: str
    seed: int
    results: pd.DataFrame


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
    return Run(path, algorithm, str(task), seed, results), ""


def _algorithm_key(name: str) -> tuple[int, str]:
    """Sort key: bound, mbpo, pets first, then the others by name."""
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
        The runs, sorted by task, algorithm (bound, mbpo, pets, then by name), seed and
        path.

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
        One row per ``(task, algorithm)`` (the index, sorted by task, then bound, mbpo,
        pets, others), with columns ``seeds`` (number of runs), ``mean``, ``iqm``
        (``scipy.stats.trim_mean(x, 0.25)``), ``ci_low``, ``ci_high`` (NaN for one
        seed), ``final_step_min`` and ``final_step_max`` (the ``env_step`` of the runs'
        last rows).
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


def write_report(
    runs: Sequence[Run],
    out_dir: str | Path,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Path:
    """Writes ``out_dir/report.md``: one table per task, the runs used, the method.

    Args:
        runs: runs from :func:`find_runs`.
        out_dir: the directory to write to (created if needed).
        confidence: level of the bootstrap confidence interval.
        n_resamples: number of bootstrap resamples.
        seed: seed of the bootstrap.

    Returns:
        The path of ``report.md``.

    Raises:
        ReportError: if ``runs`` is empty.
    """
    if not runs:
        raise ReportError("no runs to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = summarize(runs, confidence, n_resamples, seed)
    pct = f"{confidence * 100:g}%"

    lines = ["# Comparison of algorithms", ""]
    lines += [
        f"Final return per seed: `{RETURN_COL}` of the last row of each run's `results.csv` "
        "(the last evaluation for mbpo and bound, the last training episode for pets). "
        f"IQM: interquartile mean, `scipy.stats.trim_mean(x, {TRIM})` (cuts "
        f"floor({TRIM} n) seeds at each end, so it equals the mean below 4 seeds). "
        f"{pct} CI: percentile bootstrap confidence interval of the mean "
        f"(`scipy.stats.bootstrap`, {n_resamples} resamples, seed {seed}; n/a for one "
        "seed). Env steps: `env_step` of the runs' last rows. Best mean per task in bold "
        "(when there is more than one algorithm).",
        "",
    ]
    for task, sub in table.groupby(level="task", sort=False):
        best = sub["mean"].max()
        lines += [f"## {task}", ""]
        lines += [
            f"| algorithm | seeds | mean | IQM | {pct} CI | env steps |",
            "|---|---:|---:|---:|---|---:|",
        ]
        for (_, algorithm), row in sub.iterrows():
            mean = _num(row["mean"])
            if row["mean"] == best and len(sub) > 1:
                mean = f"**{mean}**"
            ci = (
                "n/a"
                if math.isnan(row["ci_low"])
                else f"[{_num(row['ci_low'])}, {_num(row['ci_high'])}]"
            )
            steps = _steps(row["final_step_min"], row["final_step_max"])
            lines.append(
                f"| {algorithm} | {int(row['seeds'])} | {mean} | {_num(row['iqm'])} "
                f"| {ci} | {steps} |"
            )
        lines.append("")

    lines += ["## Runs", ""]
    lines += [
        "| task | algorithm | seed | final return | env steps | folder |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r.task} | {r.algorithm} | {r.seed} | {_num(final_return(r))} "
            f"| {r.results[STEP_COL].iloc[-1]:g} | `{_shown_path(r.path, out_dir)}` |"
        )
    lines.append("")

    path = out_dir / REPORT_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ plots


def algorithm_colors(algorithms: Iterable[str]) -> dict[str, str]:
    """Fixed colors: bound red, mbpo blue, pets green, the others by sorted name.

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
    series = []
    for r in runs:
        df = r.results.sort_values(STEP_COL, kind="stable")
        series.append((df[STEP_COL].to_numpy(float), df[RETURN_COL].to_numpy(float)))
    lo = max(s[0] for s, _ in series)
    hi = min(s[-1] for s, _ in series)
    if lo > hi:
        lo, hi = min(s[0] for s, _ in series), max(s[-1] for s, _ in series)
    grid = np.unique(np.concatenate([s for s, _ in series]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    ys = np.full((len(series), grid.size), np.nan)
    for i, (s, y) in enumerate(series):
        inside = (grid >= s[0]) & (grid <= s[-1])
        ys[i, inside] = np.interp(grid[inside], s, y)
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


def plot_bound_diagnostics(runs: Sequence[Run], path: str | Path) -> Path | None:
    """Writes a PNG of ``disc_accuracy`` and ``kl_estimate`` over steps for bound runs.

    One row of two panels per task (tasks have different step scales), one line per
    seed, with a legend up to ``MAX_LEGEND_ENTRIES`` seeds; the accuracy panel has a
    dashed line at 0.5 (the discriminator cannot tell model from real transitions).
    Rows where a value is NaN (before the discriminator's first update) are left out.

    Args:
        runs: runs from :func:`find_runs`; only those with algorithm ``bound`` and a
            ``disc_accuracy`` or ``kl_estimate`` column are drawn.
        path: the PNG to write (its directory is created if needed).

    Returns:
        ``path``, or ``None`` (nothing written) when there is no such run.
    """
    bound_runs = [
        r
        for r in runs
        if r.algorithm == "bound" and any(c in r.results.columns for c in DIAGNOSTIC_COLS)
    ]
    if not bound_runs:
        return None
    path = Path(path)
    tasks = sorted({r.task for r in bound_runs})
    fig = Figure(figsize=(12, 3.8 * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), 2, squeeze=False)
    for (ax_acc, ax_kl), task in zip(axes, tasks, strict=True):
        for r in (r for r in bound_runs if r.task == task):
            for ax, col in ((ax_acc, "disc_accuracy"), (ax_kl, "kl_estimate")):
                if col in r.results.columns:
                    df = r.results[[STEP_COL, col]].dropna()
                    ax.plot(df[STEP_COL], df[col], label=f"seed {r.seed}", marker=".", ms=3)
        line = ax_acc.axhline(0.5, color="black", linestyle="--", linewidth=1)
        ax_acc.legend([line], ["0.5: indistinguishable"], fontsize="small", loc="lower left")
        ax_acc.set_ylim(-0.02, 1.02)
        ax_acc.set_title(f"{task}: discriminator held-out accuracy")
        ax_acc.set_ylabel("disc_accuracy")
        ax_kl.set_title(f"{task}: KL(model || real) estimate, -mean logit C")
        ax_kl.set_ylabel("kl_estimate")
        for ax in (ax_acc, ax_kl):
            ax.set_xlabel("environment steps")
            ax.grid(alpha=0.3)
        if len(ax_kl.lines) <= MAX_LEGEND_ENTRIES:
            ax_kl.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:  # a legend this long would squeeze the panels to nothing
            ax_kl.set_title(f"{task}: KL estimate, -mean logit C ({len(ax_kl.lines)} runs)")
    fig.suptitle("bound runs: discriminator diagnostics")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


# -------------------------------------------------------------------------------- CLI


def make_report(
    root: str | Path,
    out_dir: str | Path | None = None,
    task_of: Callable[[omegaconf.DictConfig], str] | None = None,
) -> list[Path]:
    """Finds the runs under ``root`` and writes the report and both plots.

    Args:
        root: the directory of run folders.
        out_dir: where to write; ``None`` writes into ``root``.
        task_of: task name of a run's config; ``None`` uses :func:`default_task_of`.

    Returns:
        The paths written: ``report.md``, ``curves.png`` and, when there are bound
        runs, ``bound_diagnostics.png``.

    Raises:
        ReportError: as :func:`find_runs`, or if ``out_dir`` cannot be created.
    """
    runs = find_runs(root, task_of)
    out = Path(root if out_dir is None else out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create {out}: {e.strerror or e}") from e
    written = [write_report(runs, out), plot_curves(runs, out / CURVES_FILE)]
    diagnostics = plot_bound_diagnostics(runs, out / DIAGNOSTICS_FILE)
    if diagnostics is not None:
        written.append(diagnostics)
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
        "curves.png and bound_diagnostics.png.",
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
