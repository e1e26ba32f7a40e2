"""Reports on finished runs: read them, compute the statistics, write markdown and plots.

``mbrl-bound-report DIR`` (:mod:`mbrl_bound_plugin.report.cli`) reads every mbrl-style
run folder under ``DIR`` and writes ``report.md``, ``curves.png`` and, when there are
runs with them, ``bound_diagnostics.png`` and ``sac_diagnostics.png``. By role:

- :mod:`~mbrl_bound_plugin.report.runs`: finding and reading run folders;
- :mod:`~mbrl_bound_plugin.report.curves`: return curves on a shared grid, the AUC;
- :mod:`~mbrl_bound_plugin.report.metrics`: the statistics (pandas);
- :mod:`~mbrl_bound_plugin.report.markdown`: ``report.md``;
- :mod:`~mbrl_bound_plugin.report.plots`: the figures.

The names below are the package's API; it imports neither torch nor mbrl.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import omegaconf

from mbrl_bound_plugin.errors import ReportError
from mbrl_bound_plugin.report.curves import area_under_curves, common_span, curve_on_grid
from mbrl_bound_plugin.report.markdown import REPORT_FILE, write_report
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
    PAIR_COLUMNS,
    SUCCESS_NOTES,
    SUCCESS_THRESHOLDS,
    TIE_TOLERANCE,
    TRIM,
    bootstrap_ci,
    final_return,
    is_success,
    last_rows,
    paired_differences,
    run_table,
    seed_interval,
    success_rates,
    summarize,
    summarize_metrics,
    summarize_paired,
)
from mbrl_bound_plugin.report.plots import (
    ALGORITHM_COLORS,
    CURVES_FILE,
    DIAGNOSTICS_FILE,
    OTHER_COLORS,
    SAC_DIAGNOSTICS_FILE,
    algorithm_colors,
    diagnostic_rows,
    plot_bound_diagnostics,
    plot_curves,
    plot_sac_diagnostics,
    read_sac_log,
)
from mbrl_bound_plugin.report.runs import (
    ALGORITHM_ALIASES,
    ALGORITHM_ORDER,
    RETURN_COL,
    STEP_COL,
    Run,
    RunFolderWarning,
    algorithm_key,
    default_task_of,
    find_runs,
    roots_of,
)

__all__ = [
    "ALGORITHM_ALIASES",
    "ALGORITHM_COLORS",
    "ALGORITHM_ORDER",
    "BASELINE",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "CURVES_FILE",
    "DIAGNOSTICS_FILE",
    "INTERVAL_BOOTSTRAP",
    "INTERVAL_RANGE",
    "LAST_FRACTION",
    "MIN_SEEDS_FOR_INTERVAL",
    "NOT_PAIRED",
    "N_RESAMPLES",
    "OTHER_COLORS",
    "PAIR_COLUMNS",
    "REPORT_FILE",
    "RETURN_COL",
    "Run",
    "RunFolderWarning",
    "SAC_DIAGNOSTICS_FILE",
    "STEP_COL",
    "SUCCESS_NOTES",
    "SUCCESS_THRESHOLDS",
    "TIE_TOLERANCE",
    "TRIM",
    "algorithm_colors",
    "algorithm_key",
    "area_under_curves",
    "bootstrap_ci",
    "common_span",
    "curve_on_grid",
    "default_task_of",
    "diagnostic_rows",
    "final_return",
    "find_runs",
    "is_success",
    "last_rows",
    "make_report",
    "paired_differences",
    "plot_bound_diagnostics",
    "plot_curves",
    "plot_sac_diagnostics",
    "read_sac_log",
    "run_table",
    "seed_interval",
    "success_rates",
    "summarize",
    "summarize_metrics",
    "summarize_paired",
    "write_report",
]


def make_report(
    root: str | Path | Sequence[str | Path],
    out_dir: str | Path | None = None,
    task_of: Callable[[omegaconf.DictConfig], str] | None = None,
    success_thresholds: Mapping[str, float] | None = None,
) -> list[Path]:
    """Finds the runs under ``root`` (one directory or several) and writes the report and
    its plots.

    Args:
        root: the directory of run folders, or a sequence of them (e.g. the ``--out``
            folders of several ``mbrl-bound-compare`` commands).
        out_dir: where to write; ``None`` writes into ``root`` (required with several).
        task_of: task name of a run's config; ``None`` uses :func:`default_task_of`.
        success_thresholds: task name to success threshold (names as ``task_of``
            gives them); ``None`` uses :data:`SUCCESS_THRESHOLDS`.

    Returns:
        The paths written: ``report.md``, ``curves.png`` and, when there are bound
        runs, ``bound_diagnostics.png``; when a run has SAC's ``train.csv``,
        ``sac_diagnostics.png``.

    Raises:
        ReportError: as :func:`find_runs`, if ``out_dir`` cannot be created, or if it is
            ``None`` with several roots.
    """
    roots = roots_of(root)
    if out_dir is None and len(roots) != 1:
        raise ReportError("a report on several directories needs an output directory (--out)")
    runs = find_runs(roots, task_of)
    out = Path(roots[0] if out_dir is None else out_dir)
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
