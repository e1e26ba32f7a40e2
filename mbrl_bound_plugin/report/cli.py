"""``mbrl-bound-report DIR [DIR ...] [--out OUT_DIR]``: the report on the run folders under
each ``DIR``, in one report."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from mbrl_bound_plugin.errors import ReportError
from mbrl_bound_plugin.report import DIAGNOSTICS_FILE, RunFolderWarning, make_report

PROG = "mbrl-bound-report"


def main(argv: Sequence[str] | None = None) -> int:
    """The ``mbrl-bound-report DIR [DIR ...] [--out OUT_DIR]`` command.

    Prints each path written, one a line, and skipped run folders as warnings on
    stderr; bad input is one line on stderr and exit code 2.

    Args:
        argv: the arguments after the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success (as the process exit code).

    Raises:
        SystemExit: code 2 on a :class:`~mbrl_bound_plugin.errors.ReportError` or bad
            arguments.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tables and plots of the mbrl run folders under each DIR, in one report: "
        "report.md, curves.png, bound_diagnostics.png and sac_diagnostics.png.",
    )
    parser.add_argument("dirs", metavar="DIR", nargs="+", help="directory searched for run folders")
    parser.add_argument(
        "--out", metavar="OUT_DIR", help="where to write (default: DIR; needed with several)"
    )
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunFolderWarning)
        try:
            written = make_report(args.dirs, args.out)
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
