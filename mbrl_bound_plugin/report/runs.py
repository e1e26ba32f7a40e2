"""Finding and reading run folders: :class:`Run`, :func:`find_runs`, task and algorithm names.

A run folder is any folder holding a ``results.csv`` next to Hydra's
``.hydra/config.yaml``: single runs, multirun sweeps ``0/``, ``1/``, ..., runs made by hand
with ``mbrl-bound -m ...``. Runs of ``algorithm=mbpo_resumable`` (MBPO in this package's
loop, which checkpoints and resumes) are MBPO: they are read as ``mbpo``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import omegaconf
import pandas as pd

from mbrl_bound_plugin.errors import STOPPED_FILE, ReportError
from mbrl_bound_plugin.util import wall_time

STEP_COL = "env_step"
RETURN_COL = "episode_reward"

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


def algorithm_key(name: str) -> tuple[int, str]:
    """Sort key of an algorithm: in :data:`ALGORITHM_ORDER` first, then the others by name.

    Args:
        name: the algorithm's name.

    Returns:
        ``(position, name)``, the position ``len(ALGORITHM_ORDER)`` for other names.
    """
    order = ALGORITHM_ORDER.index(name) if name in ALGORITHM_ORDER else len(ALGORITHM_ORDER)
    return order, name


def sort_by_task_and_algorithm(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` sorted by ``task``, then ``algorithm`` (:func:`algorithm_key`).

    Args:
        frame: a frame with ``task`` and ``algorithm`` columns.

    Returns:
        The sorted frame (stable: rows of one task and algorithm keep their order).
    """
    names = sorted(set(frame["algorithm"]), key=algorithm_key)
    rank = frame["algorithm"].map({name: i for i, name in enumerate(names)})
    order = frame.assign(_rank=rank).sort_values(["task", "_rank"], kind="stable").index
    return frame.loc[order]


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


def _warn(message: str) -> None:
    # stacklevel 3: the caller of find_runs
    warnings.warn(message, RunFolderWarning, stacklevel=3)


def _repeated(runs: Iterable[Run]) -> list[str]:
    """``bound on TASK seed 1 x2`` for each task, algorithm and seed run more than once."""
    keys = pd.DataFrame([(r.task, r.algorithm, r.seed) for r in runs], columns=["t", "a", "s"])
    counts = keys.groupby(["t", "a", "s"], sort=False).size()
    return [f"{a} on {t} seed {s} x{n}" for (t, a, s), n in counts[counts > 1].items()]


def roots_of(root: str | Path | Sequence[str | Path]) -> list[Path]:
    """``root`` as a list of directories: one path, or each of a sequence of them."""
    return [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]


def find_runs(
    root: str | Path | Sequence[str | Path],
    task_of: Callable[[omegaconf.DictConfig], str] | None = None,
) -> list[Run]:
    """Finds and reads every run folder (a folder holding ``results.csv``) under ``root``,
    or under each of several roots (a run folder under two of them counts once).

    Folders that cannot be used (an empty ``results.csv``, one without ``env_step`` or
    ``episode_reward``, no ``.hydra/config.yaml``, ...) are skipped with one
    :class:`RunFolderWarning` listing them and why. Runs sharing task, algorithm and
    seed are all kept (each counts as one seed), with one more warning listing them.

    Args:
        root: the directory to search, recursively; or a sequence of them.
        task_of: maps a run's composed config to its task name; ``None`` uses
            :func:`default_task_of`.

    Returns:
        The runs, sorted by task, algorithm (:data:`ALGORITHM_ORDER`, then by name),
        seed and path.

    Raises:
        ReportError: if a root is not a directory, or the roots hold no usable run.
    """
    roots = roots_of(root)
    if not roots:
        raise ReportError("no directory to search for run folders")
    for each in roots:
        if not each.is_dir():
            what = "is not a directory" if each.exists() else "does not exist"
            raise ReportError(f"{each} {what}")
    task_of = default_task_of if task_of is None else task_of
    found = {  # a folder under two roots (one inside the other) counts once
        f.parent.resolve(): f.parent
        for each in roots
        for f in each.rglob("results.csv")
        if f.is_file()
    }
    folders = sorted(found.values())
    where = ", ".join(str(each) for each in roots)
    if not folders:
        raise ReportError(f"no run folder (a folder with a results.csv) under {where}")

    runs: list[Run] = []
    skipped: list[str] = []
    for folder in folders:
        run, why = _read_run(folder, task_of)
        if run is None:
            skipped.append(f"{folder} ({why})")
        else:
            runs.append(run)
    if skipped:
        _warn(f"skipped {len(skipped)} run folder(s): {'; '.join(skipped)}")
    if not runs:
        raise ReportError(f"no usable run under {where}: all {len(skipped)} skipped")

    runs.sort(key=lambda r: (r.task, algorithm_key(r.algorithm), r.seed, str(r.path)))
    if repeated := _repeated(runs):
        _warn(
            f"runs with the same task, algorithm and seed, each counted as a seed: "
            f"{'; '.join(repeated)}"
        )
    return runs
