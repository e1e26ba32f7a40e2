"""Command line of the tabular experiments.

::

    python -m mbrl_bound_plugin.tabular {bound-tracking,risk,inaccurate-model} [--json]
        [--plot FILE.png]

prints a short summary (or, with ``--json``, one JSON object) and, with ``--plot``,
draws the experiment's figure. matplotlib is imported only when ``--plot`` is given.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from mbrl_bound_plugin.tabular import experiments

EXPERIMENTS = ("bound-tracking", "risk", "inaccurate-model")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def summary(name: str, result: dict[str, Any]) -> str:
    """The human-readable summary that the command prints without ``--json``.

    Args:
        name: the experiment, one of :data:`EXPERIMENTS`.
        result: the experiment's result.

    Returns:
        A few lines of text (no trailing newline).
    """
    if name == "bound-tracking":
        its = result["iterations"]
        first, last = its[0], its[-1]
        lines = [f"bound-tracking: {len(its)} iterates (initial one included)"]
        for label, r in (("first", first), ("last", last)):
            lines.append(
                f"  {label}: log J = {_fmt(r['log_return'])}, bound = {_fmt(r['bound'])}, "
                f"log VMBPO objective = {_fmt(r['vmbpo_objective'])}"
            )
        return "\n".join(lines)
    if name == "risk":
        return "risk (true return from the start): " + ", ".join(
            f"{k} = {v:.3f}" for k, v in result.items()
        )
    return "inaccurate-model:\n" + "\n".join(
        f"  {k}: value = {v['value']:.3f}, reaches goal = {v['reaches_goal']}"
        for k, v in result.items()
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m mbrl_bound_plugin.tabular EXPERIMENT [--json] [--plot F]``.

    Args:
        argv: arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m mbrl_bound_plugin.tabular",
        description="Exact tabular Mismatched-No-More experiments.",
    )
    parser.add_argument("experiment", choices=EXPERIMENTS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the experiment's figure")
    args = parser.parse_args(argv)

    if args.plot:  # matplotlib is imported only to draw a figure
        from mbrl_bound_plugin.tabular import plots

    if args.experiment == "bound-tracking":
        result = experiments.run_bound_tracking()
        if args.plot:
            plots.plot_bound_tracking(result, args.plot)
    elif args.experiment == "risk":
        result = experiments.run_risk()
        if args.plot:
            plots.plot_risk(result, args.plot)
    else:
        grid, runs = experiments.inaccurate_model_runs()
        result = experiments.inaccurate_model_result(grid, runs)
        if args.plot:
            plots.plot_inaccurate_model(grid, runs, result, args.plot)
    print(json.dumps(result) if args.json else summary(args.experiment, result))
    return 0
