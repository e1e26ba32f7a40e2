"""What a run cost: one row per session in ``wall_time.csv``, in the run's folder.

The command ``mbrl-bound`` wraps every run (a single run, each job of a ``-m`` sweep,
whatever the algorithm) in :func:`recording`, which appends one row when the run ends,
however it ends: when it started, its wall-clock seconds, the CPU seconds of its
process (user and system, all threads; more than the wall time when torch uses several
threads, less when the run shares its cores) and how it ended. A resumed run adds a row
per session, so the run's cost is the sum of its rows, the work redone after the last
checkpoint included. A process killed outright (SIGKILL, a lost machine) writes no row:
nothing runs to write it. ``mbrl-bound-report`` reads the file (:func:`read`).

Each row also says where the session ran (the ``machine`` column, :func:`machine`): two
runs of the same seed and code are identical on one machine, but a session on another
CPU, thread count or library version can round differently and take another course.

This module imports nothing else of the package but its error types.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import importlib.metadata
import os
import platform
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mbrl_bound_plugin.errors import CheckpointWriteError, NumericalError, RunInterrupted

WALL_TIME_FILE = "wall_time.csv"
COLUMNS = ("started", "wall_s", "cpu_s", "ended", "machine")
# the libraries whose versions go into the machine column
LIBRARIES = ("numpy", "mujoco", "gymnasium", "mbrl")
# How a session ended (the ``ended`` column): the run returned; it stopped on a signal
# (after writing a checkpoint, except during the initial exploration: resume continues
# it); it stopped on an error it cannot continue past (a NaN, an unwritable checkpoint:
# see stopped.txt); any other error.
COMPLETED, INTERRUPTED, STOPPED, FAILED = "completed", "interrupted", "stopped", "failed"


class WallTimeWarning(UserWarning):
    """``wall_time.csv`` could not be written; the run itself is not affected."""


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """Where this process runs, in one line, for telling apart runs that should match.

    The CPU model, then torch's version, CPU capability (the vector kernels it picked,
    e.g. ``AVX2``) and intra-op threads (and the CUDA device, when there is one), then
    the versions of :data:`LIBRARIES` that are installed; ``"; "`` between them.
    """
    parts = [_cpu_model()]
    try:
        import torch

        kernels = torch.backends.cpu.get_cpu_capability()
        parts.append(f"torch {torch.__version__} {kernels} threads {torch.get_num_threads()}")
        if torch.cuda.is_available():
            parts.append(torch.cuda.get_device_name())
    except ImportError:
        pass
    for name in LIBRARIES:
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return "; ".join(parts)


def _how_it_ended(error: BaseException | None) -> str:
    if error is None:
        return COMPLETED
    # (SystemExit inside the run: a launcher's signal handler ending the process, as
    # submitit's does after requeueing the job)
    if isinstance(error, (RunInterrupted, KeyboardInterrupt, SystemExit)):
        return INTERRUPTED
    if isinstance(error, (NumericalError, CheckpointWriteError)):
        return STOPPED
    return FAILED


def _header(path: Path) -> list[str] | None:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def append_row(
    path: str | Path,
    started: datetime.datetime,
    wall_s: float,
    cpu_s: float,
    ended: str,
    where: str = "",
) -> None:
    """Appends one session to ``path`` (a ``wall_time.csv``), with the header if it is new.

    A file begun by an older version, without the ``machine`` column, gets rows
    without it, so that its rows keep matching its header.

    Raises:
        OSError: the file cannot be written.
    """
    path = Path(path)
    header = _header(path)  # None: no file yet, or an empty one
    row = [started.isoformat(timespec="seconds"), f"{wall_s:.1f}", f"{cpu_s:.1f}", ended, where]
    with path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if header is None:
            writer.writerow(COLUMNS)
        writer.writerow(row[: len(header or COLUMNS)])


@contextlib.contextmanager
def recording(path: str | Path = WALL_TIME_FILE) -> Iterator[None]:
    """Times the block and appends its row to ``path`` when it ends, however it ends.

    The block's exception, if any, goes on unchanged; a file that cannot be written is a
    :class:`WallTimeWarning`, never an error (the run's results matter more than its time).

    Args:
        path: the ``wall_time.csv`` to append to; relative paths are resolved when the
            block starts (``mbrl-bound``'s runs work in their own folder).
    """
    path = Path(path).absolute()
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        where = machine()
    except Exception as e:  # describing the machine must never stop the run
        where = f"unknown ({type(e).__name__})"
    wall0, cpu0 = time.perf_counter(), _cpu_seconds()
    error: BaseException | None = None
    try:
        yield
    except BaseException as e:
        error = e
        raise
    finally:
        ended = _how_it_ended(error)
        try:
            wall_s, cpu_s = time.perf_counter() - wall0, _cpu_seconds() - cpu0
            append_row(path, started, wall_s, cpu_s, ended, where)
        except OSError as e:
            warnings.warn(f"could not write {path}: {e}", WallTimeWarning, stacklevel=3)


@dataclass(frozen=True)
class Cost:
    """A run's cost, summed over the sessions of its ``wall_time.csv``.

    Attributes:
        wall_s: wall-clock seconds.
        cpu_s: CPU seconds of the run's process.
        sessions: the number of rows (1 for a run that was never resumed).
    """

    wall_s: float
    cpu_s: float
    sessions: int


def read(run_dir: str | Path) -> Cost | None:
    """The summed cost of the run in ``run_dir``; ``None`` without a readable ``wall_time.csv``.

    Rows that do not parse (a line cut short by a full disk) are left out.
    """
    path = Path(run_dir) / WALL_TIME_FILE
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    wall = cpu = 0.0
    sessions = 0
    for row in rows:
        try:
            w, c = float(row["wall_s"]), float(row["cpu_s"])
        except (KeyError, TypeError, ValueError):
            continue
        wall, cpu, sessions = wall + w, cpu + c, sessions + 1
    return Cost(wall, cpu, sessions) if sessions else None
