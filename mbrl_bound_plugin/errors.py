"""The program name and every error type of mbrl-bound, in one place.

Each error says what happened in one line; the command (:mod:`mbrl_bound_plugin.cli.main`)
prints it after ``PROG`` and exits with the code given here. Python callers catch them
like any exception. This module imports nothing else of the package.
"""

from __future__ import annotations

import pathlib
import signal

PROG = "mbrl-bound"
# Written in a run's folder when the run stops on an error it cannot continue past (a NaN,
# a checkpoint that cannot be written): the error's line. Removed when the run starts
# again; mbrl-bound-report marks such runs.
STOPPED_FILE = "stopped.txt"


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its ``repr`` if the message is empty).

    Library errors (Hydra's, torch's) often add lines of advice or a traceback-like
    listing; a one-line error keeps only the line that says what is wrong.
    """
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


class CompareError(Exception):
    """Bad input to ``mbrl-bound-compare`` (one line, exit code 2)."""


class ReportError(Exception):
    """Bad input to ``mbrl-bound-report`` (no runs, missing directory); one line, exit code 2."""


class UsageError(Exception):
    """A problem with the user's input: one line saying what to change, exit code 2."""


class CheckpointReadError(UsageError):
    """A checkpoint that cannot be continued: unreadable, damaged, of another mbrl-bound
    version, holding more than tensors and plain data, or of another run (exit code 2)."""


class NumericalError(RuntimeError):
    """A NaN or inf in a loss or reward; the message names the component (exit code 1)."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (full disk, no permission, ...); exit code 1."""


class RunInterrupted(RuntimeError):
    """The run stopped on a signal after writing a checkpoint (exit code 128 + signal).

    The message says what happened; how to continue depends on the caller (the command
    adds ``resume=true hydra.run.dir=...``; ``train`` continues with ``resume=true`` and
    the same ``work_dir``, which is ``run_dir``).

    Args:
        signum: the signal received.
        env_steps: environment steps taken when the checkpoint was written.
        path: the checkpoint written (in ``<run_dir>/checkpoints/``).
    """

    def __init__(self, signum: int, env_steps: int, path: pathlib.Path):
        self.signum = signum
        self.run_dir = path.parent.parent
        name = signal.Signals(signum).name
        super().__init__(f"{name} at environment step {env_steps}; checkpoint {path} written")
