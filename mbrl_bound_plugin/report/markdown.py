"""``report.md``: the method, one section per task, the list of runs; tables by pandas.

Each table is a frame of cells (strings) written with ``DataFrame.to_markdown``
(``tabulate``'s pipe format); the numbers come from :mod:`mbrl_bound_plugin.report.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from mbrl_bound_plugin.errors import ReportError
from mbrl_bound_plugin.report import metrics
from mbrl_bound_plugin.report.metrics import (
    BASELINE,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    INTERVAL_BOOTSTRAP,
    INTERVAL_RANGE,
    LAST_FRACTION,
    MIN_SEEDS_FOR_INTERVAL,
    N_RESAMPLES,
    NOT_PAIRED,
    SUCCESS_NOTES,
    SUCCESS_THRESHOLDS,
    TRIM,
)
from mbrl_bound_plugin.report.runs import RETURN_COL, STEP_COL, Run, algorithm_key

REPORT_FILE = "report.md"
ALIGN = {"l": "left", "r": "right"}


def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"


def _signed(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:+.2f}"


def _minutes(seconds: float) -> str:
    return "" if math.isnan(seconds) else f"{seconds / 60:.1f}"


def _steps(low: float, high: float) -> str:
    return f"{low:g}" if low == high else f"{low:g}–{high:g}"


def _shown_path(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve())) or "."
    except ValueError:
        return str(path.resolve())


def _table(cells: pd.DataFrame, align: str) -> list[str]:
    """Markdown table lines and a blank line; ``align`` has one ``l`` or ``r`` per column."""
    text = cells.to_markdown(index=False, colalign=[ALIGN[a] for a in align], disable_numparse=True)
    return [*text.splitlines(), ""]


def _algorithms(frame: pd.DataFrame) -> pd.Series:
    """The ``algorithm`` level of a frame indexed by task and algorithm, as cells."""
    return pd.Series(frame.index.get_level_values("algorithm"), index=frame.index)


def _interval_cells(frame: pd.DataFrame, metric: str, pct: str) -> pd.Series:
    """Cells ``95% bootstrap [low, high]``, ``range [min, max]`` or ``n/a`` of ``metric``."""

    def cell(row: pd.Series) -> str:
        low, high = _num(row[f"{metric}_low"]), _num(row[f"{metric}_high"])
        kind = row[f"{metric}_interval"]
        if kind == INTERVAL_BOOTSTRAP:
            return f"{pct} bootstrap [{low}, {high}]"
        return f"range [{low}, {high}]" if kind == INTERVAL_RANGE else "n/a"

    return frame.apply(cell, axis=1)


def _interval_notes(kinds: Iterable[str], what: str, count: str, pct: str) -> list[str]:
    """What the interval cells of a table mean, for the kinds it shows.

    Args:
        kinds: the tables' interval kinds (:func:`~mbrl_bound_plugin.report.metrics.seed_interval`).
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


def _who(runs: pd.DataFrame) -> str:
    """``pets seed 0`` for one run, ``bound, mbpo (10 runs)`` for several."""
    if len(runs) == 1:
        return f"{runs['algorithm'].iloc[0]} seed {runs['seed'].iloc[0]}"
    algorithms = sorted(set(runs["algorithm"]), key=algorithm_key)
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
        means = stats[f"{metric}_mean"]
        mean_cells = means.map(_num)
        if len(stats) > 1:  # the best mean in bold
            best = means == means.max()
            mean_cells[best] = "**" + mean_cells[best] + "**"
        cells = pd.DataFrame(
            {
                "algorithm": _algorithms(stats),
                # (a run stopped by an error has no AUC)
                "seeds": stats[f"{metric}_n"].astype(int).astype(str),
                "mean": mean_cells,
                "IQM": stats[f"{metric}_iqm"].map(_num),
                "interval": _interval_cells(stats, metric, pct),
            }
        )
        align = "lrrrl"
        if metric == "final":
            steps = zip(stats["final_step_min"], stats["final_step_max"], strict=True)
            cells["env steps"] = [_steps(low, high) for low, high in steps]
            align += "r"
        what = "final return" if metric == "final" else "AUC"
        lines += [f"### {title}", "", *_table(cells, align)]
        lines += _interval_notes(stats[f"{metric}_interval"], what, "seeds", pct)
    return lines


def _cost_lines(runs: pd.DataFrame) -> list[str]:
    """The task's cost per run and algorithm (``runs``: its rows of run_table), from the
    runs' ``wall_time.csv``; nothing when none has one."""
    if runs["wall_s"].isna().all():
        return []
    cost = runs.groupby("algorithm", sort=False).agg(
        runs=("wall_s", "size"),
        timed=("wall_s", "count"),
        wall=("wall_s", "median"),
        wall_min=("wall_s", "min"),
        wall_max=("wall_s", "max"),
        cpu=("cpu_s", "median"),
    )
    wall_range = cost["wall_min"].map(_minutes) + "–" + cost["wall_max"].map(_minutes)
    cells = pd.DataFrame(
        {
            "algorithm": cost.index,
            "runs timed": cost["timed"].astype(str) + " of " + cost["runs"].astype(str),
            "wall min, median": cost["wall"].map(_minutes),
            "wall min, range": wall_range.where(cost["timed"] > 0, ""),
            "CPU min, median": cost["cpu"].map(_minutes),
        }
    )
    return [
        "### Cost per run",
        "",
        *_table(cells, "lrrrr"),
        "From each run's `wall_time.csv` (written by `mbrl-bound`), summed over the "
        "sessions of a resumed run (work redone after its last checkpoint included); runs "
        "without one are not counted. Wall time depends on what else ran beside the run; "
        "CPU time is its process's, all threads.",
        "",
    ]


def _paired_lines(paired: pd.DataFrame, pairs: pd.DataFrame, pct: str) -> list[str]:
    """A task's paired differences: summary, left-out seeds, the per-seed table."""
    lines = [f"### Paired difference against {BASELINE}", ""]
    cells = pd.DataFrame({"algorithm": _algorithms(paired), "pairs": paired["pairs"].astype(str)})
    for m, name in (("final", "final return"), ("auc", "AUC")):
        cells[f"{name}: mean difference"] = paired[f"{m}_mean"].map(_signed)
        cells[f"{name}: interval"] = _interval_cells(paired, m, pct)
        outcomes = [paired[f"{m}_{o}"].astype(str) for o in metrics.OUTCOMES]
        cells[f"{name}: wins/ties/losses"] = outcomes[0] + "/" + outcomes[1] + "/" + outcomes[2]
    lines += _table(cells, "lrrlrrlr")
    kinds = [*paired["final_interval"], *paired["auc_interval"]]
    lines += _interval_notes(kinds, f"difference algorithm − {BASELINE}", "pairs", pct)
    left_out = [f"{a}: {notes}" for (_, a), notes in paired["left_out"].items() if notes]
    if left_out:
        lines += [f"Left out of the pairs: {'; '.join(left_out)}.", ""]
    if not pairs.empty:
        per_seed = pd.DataFrame(
            {
                "algorithm": pairs["algorithm"],
                "seed": pairs["seed"].astype(str),
                "final return": pairs["final"].map(_num),
                f"{BASELINE} final return": pairs["baseline_final"].map(_num),
                "difference": pairs["final_diff"].map(_signed),
                "AUC": pairs["auc"].map(_num),
                f"{BASELINE} AUC": pairs["baseline_auc"].map(_num),
                "auc difference": pairs["auc_diff"].map(_signed),
            }
        ).rename(columns={"auc difference": "difference"})
        lines += [f"Per seed, algorithm − {BASELINE}:", "", *_table(per_seed, "lrrrrrrr")]
    return lines


def _success_lines(task: str, success: pd.DataFrame) -> list[str]:
    """A task's success rates (``success``: its success_rates rows)."""
    threshold = success["threshold"].iloc[0]
    lines = [f"### Success (episode return > {threshold:.4g})", ""]
    if task in SUCCESS_NOTES:
        lines += [f"{SUCCESS_NOTES[task]}.", ""]
    seeds = success["seeds"].astype(int).astype(str)
    cells = pd.DataFrame(
        {
            "algorithm": _algorithms(success),
            "seeds": seeds,
            "final episode": success["final_successes"].astype(int).astype(str) + "/" + seeds,
            "last quarter of rows": success["last_rate"].map(_num),
            "ever": success["ever_successes"].astype(int).astype(str) + "/" + seeds,
        }
    )
    return [*lines, *_table(cells, "lrrrr")]


def _runs_lines(per_run: pd.DataFrame, out_dir: Path) -> list[str]:
    """The list of runs, one row each (``per_run``: run_table)."""
    stopped = per_run["stopped"].map(lambda s: " (stopped)" if s else "")
    cells = pd.DataFrame(
        {
            "task": per_run["task"],
            "algorithm": per_run["algorithm"],
            "seed": per_run["seed"].astype(str),
            "final return": per_run["final"].map(_num),
            "AUC": per_run["auc"].map(_num),
            "env steps": per_run["final_step"].map("{:g}".format) + stopped,
            "wall min": per_run["wall_s"].map(_minutes),
            "folder": per_run["path"].map(lambda p: f"`{_shown_path(p, out_dir)}`"),
        }
    )
    return ["## Runs", "", *_table(cells, "llrrrrrl")]


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
    see :attr:`Run.stopped`), the final return and AUC tables
    (:func:`~mbrl_bound_plugin.report.metrics.summarize_metrics`), the paired differences
    against :data:`~mbrl_bound_plugin.report.metrics.BASELINE`
    (:func:`~mbrl_bound_plugin.report.metrics.summarize_paired` and
    :func:`~mbrl_bound_plugin.report.metrics.paired_differences`) when it has baseline
    runs and runs to compare with them, the success rates
    (:func:`~mbrl_bound_plugin.report.metrics.success_rates`) when it has a success
    threshold, and the cost per run when its runs have a ``wall_time.csv``.

    Args:
        runs: runs from :func:`~mbrl_bound_plugin.report.runs.find_runs`.
        out_dir: the directory to write to (created if needed).
        confidence: level of the bootstrap intervals.
        n_resamples: number of bootstrap resamples.
        seed: seed of the bootstrap.
        success_thresholds: task name to success threshold; ``None`` uses
            :data:`~mbrl_bound_plugin.report.metrics.SUCCESS_THRESHOLDS`.

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
    per_run = metrics.run_table(runs)
    stats = metrics.summarize_metrics(runs, confidence, n_resamples, seed)
    paired = metrics.summarize_paired(runs, BASELINE, confidence, n_resamples, seed)
    pairs = metrics.paired_differences(runs, BASELINE)
    success = metrics.success_rates(runs, thresholds)
    pct = f"{confidence * 100:g}%"

    lines = ["# Comparison of algorithms", ""]
    lines += _preamble(pct, n_resamples, seed, thresholds)
    for task, sub in stats.groupby(level="task", sort=False):
        task_runs = per_run[per_run["task"] == task]
        lines += [f"## {task}", ""]
        lines += _span_lines(task_runs)
        lines += _stopped_lines(task_runs)
        lines += _metric_lines(sub, pct)
        task_paired = paired[paired.index.get_level_values("task") == task]
        if not task_paired.empty:
            lines += _paired_lines(task_paired, pairs[pairs["task"] == task], pct)
        task_success = success[success.index.get_level_values("task") == task]
        if not task_success.empty:
            lines += _success_lines(str(task), task_success)
        lines += _cost_lines(task_runs)
    lines += _runs_lines(per_run, out_dir)

    path = out_dir / REPORT_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
