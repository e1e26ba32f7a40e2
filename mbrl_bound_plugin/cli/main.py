"""The ``mbrl-bound`` command: a Hydra app with the semantics of mbrl's ``examples/main.py``.

It composes ``conf/main.yaml`` (the same keys as mbrl's ``main.yaml``), resolves the
device, builds the environment and dispatches on ``algorithm.name`` to mbrl's own
``pets.train``, ``mbpo.train`` and ``planet.train``, or to this package's ``train``
for ``algorithm=bound`` and ``mbpo_resumable``. Bad input is one line on stderr and exit
code 2, found before Hydra starts and writes anything (:func:`preflight`). The command
line is read with Hydra's own parsers, so every Hydra syntax works (``choice(...)``,
``glob(...)``, quoted values, ``-m`` sweeps).
"""

from __future__ import annotations

import math
import os
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import hydra
import numpy as np
import omegaconf
import torch
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import Override
from hydra.types import RunMode

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import mbrl_bound_conf_dir
from mbrl_bound_plugin import require_mbrl
from mbrl_bound_plugin.config.checks import check_config
from mbrl_bound_plugin.config.composition import (
    ComposedRun,
    check_sweep_base,
    complete_config,
    compose_checked,
    quiet_config_warnings,
)
from mbrl_bound_plugin.config.overrides import check_group_choices, parse_overrides, sweep_jobs
from mbrl_bound_plugin.errors import (
    PROG,
    STOPPED_FILE,
    CheckpointWriteError,
    NumericalError,
    RunInterrupted,
    UsageError,
)
from mbrl_bound_plugin.util import wall_time
from mbrl_bound_plugin.util.device import resolve_device

# The jobs this process checked before Hydra started (:func:`preflight`), by their task
# overrides (Hydra's ``hydra.overrides.task``): their Hydra task (:func:`run`) does not
# check them again (and finds their device resolved, :mod:`mbrl_bound_plugin.util.device`).
_checked_jobs: set[tuple[str, ...]] = set()


def _nearest_existing(path: pathlib.Path) -> pathlib.Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_output_dirs(overrides: Sequence[Override]) -> None:
    """Refuses an output directory (``root_dir``, ``hydra.run.dir``, ...) that cannot be made."""
    values = {o.key_or_group: o for o in overrides if not o.is_delete()}
    out_dirs = {"root_dir": "./exp"}
    for key in ("root_dir", "hydra.run.dir", "hydra.sweep.dir"):
        override = values.get(key)
        if override is not None and not override.is_sweep_override():
            out_dirs[key] = str(override.value())
    for key, out in out_dirs.items():
        if "${" in out:
            continue
        existing = _nearest_existing(pathlib.Path(out))
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise UsageError(
                f"output directory {out!r} is not writable ({existing} is not a writable "
                f"directory); pass {key}=SOME/WRITABLE/DIR"
            )


def preflight(argv: Sequence[str]) -> None:
    """Checks the command line before Hydra starts, so that bad input writes nothing.

    The arguments are split by Hydra's own argument parser and its overrides parsed
    once, by Hydra's override grammar
    (:func:`mbrl_bound_plugin.config.overrides.parse_overrides`). Then:

    - a single run's configuration is composed and checked in full, exactly as
      :func:`mbrl_bound_plugin.compose` does (the same ``UsageError`` for the same input);
    - a ``-m`` sweep is split into its jobs by Hydra's basic sweeper
      (:func:`mbrl_bound_plugin.config.overrides.sweep_jobs`: every job, or one job per
      swept value beyond ``MAX_CHECKED_JOBS`` jobs), and each job's configuration is
      composed and checked before any job is launched (a fraction of a second each).
      Sweeps that another sweeper expands (``hydra/sweeper=...``,
      ``interval(...)``) get the command-line checks only. What Hydra composes before
      launching (the command without its sweeps) is composed too
      (:func:`~mbrl_bound_plugin.config.composition.check_sweep_base`);
    - ``--cfg``, ``--info``, ``-cp``/``-cn``/``--config-dir`` and
      ``--experimental-rerun`` (which print a configuration or compose another one)
      get the command-line checks only.

    A job checked here is not checked again in its Hydra task (:func:`run`), nor is its
    device resolved again (:mod:`mbrl_bound_plugin.util.device`); the jobs not checked
    here (of a large sweep beyond the sampled ones, of another config or sweeper, and
    every job a launcher runs in another process) are checked there.

    Args:
        argv: the command-line arguments (without the program name).

    Raises:
        UsageError: an override Hydra cannot parse, an unknown config group choice (also
            inside a sweep), a non-writable output directory, a sweep without ``-m``, or
            a configuration (of the run, or of any job of a sweep) that cannot run.
    """
    args, _unknown = get_args_parser().parse_known_args(list(argv))
    if args.help or args.hydra_help or args.shell_completion:
        return
    overrides = parse_overrides(args.overrides)
    check_group_choices(overrides)
    _check_output_dirs(overrides)
    inspect_only = args.cfg or args.info or args.experimental_rerun
    if inspect_only or args.config_path or args.config_name or args.config_dir:
        return
    if not args.multirun:
        sweeps = [o.input_line for o in overrides if o.is_sweep_override()]
        if sweeps:
            raise UsageError(
                f"{sweeps[0]} is a sweep; add -m (--multirun) to run one job per value"
            )
        _record_checked(compose_checked(args.overrides, overrides))
        return
    jobs = sweep_jobs(overrides)
    swept = {o.get_key_element() for o in overrides if o.is_sweep_override()}
    for job in jobs or []:
        try:
            _record_checked(compose_checked(job, overrides))
        except UsageError as e:
            if not swept:
                raise
            values = " ".join(o for o in job if o.split("=", 1)[0] in swept)
            raise UsageError(f"{e} (in the job {values})") from e
    if jobs is not None:
        check_sweep_base(overrides)


def _record_checked(run: ComposedRun) -> None:
    """Remembers a job :func:`preflight` checked."""
    _checked_jobs.add(run.task_overrides)


def _record_completion(filled: Mapping[str, Any]) -> None:
    """Adds the keys :func:`complete_config` filled in to the run's saved ``config.yaml``.

    Hydra saves the configuration before the task runs; with these keys the saved file
    is the configuration that ran (e.g. mbrl's ``load_hydra_cfg`` then
    ``create_replay_buffer(load_dir=...)`` rebuilds a buffer of the run's capacity).
    """
    hydra_cfg = HydraConfig.get()
    if not filled or hydra_cfg.output_subdir is None:
        return
    path = pathlib.Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir / "config.yaml"
    if not path.is_file():
        return
    saved = omegaconf.OmegaConf.load(path)
    for key, value in filled.items():
        omegaconf.OmegaConf.update(saved, key, value, force_add=True)
    omegaconf.OmegaConf.save(saved, path)


def run(cfg: omegaconf.DictConfig) -> float:
    """Trains ``cfg.algorithm.name`` on the configured task (mbrl's main.py semantics).

    The configuration is checked as :func:`mbrl_bound_plugin.compose` does, unless
    :func:`preflight` checked it in this process, and completed (the replay buffer sized
    for the whole run, also in the saved ``.hydra/config.yaml``).

    Args:
        cfg: the composed configuration; ``cfg.device`` may be ``auto``.

    Returns:
        What the algorithm's ``train`` returns (its best episode or evaluation return).
    """
    from mbrl_bound_plugin.env.factory import make_env

    hydra_cfg = HydraConfig.get()
    cfg.device = resolve_device(cfg.device)  # (resolved once per process)
    if tuple(hydra_cfg.overrides.task) not in _checked_jobs:  # e.g. run in another process
        check_config(cfg, hydra_cfg.runtime.choices)
    _record_completion(complete_config(cfg))
    name = cfg.algorithm.name
    env, term_fn, reward_fn = make_env(cfg)
    if cfg.seed is not None:
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
    work_dir = os.getcwd()
    # (a line an epoch, or a trial, on the console, unless verbose=true)
    from mbrl_bound_plugin.util.console import quiet_console

    if name == "pets":
        import mbrl.algorithms.pets as pets

        with quiet_console(cfg.get("verbose", False)):
            result = pets.train(env, term_fn, reward_fn, cfg, work_dir=work_dir)
    elif name == "mbpo":
        import mbrl.algorithms.mbpo as mbpo

        test_env, *_ = make_env(cfg)
        with quiet_console(cfg.get("verbose", False)):
            result = mbpo.train(env, test_env, term_fn, cfg, work_dir=work_dir)
    elif name == "planet":
        import mbrl.algorithms.planet as planet

        result = planet.train(env, cfg, work_dir=work_dir)
    else:
        from mbrl_bound_plugin.algorithms.bound import train

        test_env, *_ = make_env(cfg)
        with quiet_console(cfg.get("verbose", False)):
            result = train(env, test_env, term_fn, cfg, work_dir=work_dir)
    print(f"{PROG}: results in {pathlib.Path(work_dir) / 'results.csv'}")
    return float(result)


def _in_sweep() -> bool:
    """Whether this run is one job of a ``-m`` sweep."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _task(cfg: omegaconf.DictConfig) -> float:
    """The Hydra task: one run, with errors as one line and an exit code.

    A run stopped by a NaN or inf exits with code 1 on its own; in a sweep it returns NaN
    instead, so that the sweep's other jobs (other seeds) still run: its ``stopped.txt``
    says it stopped. However the run ends, its ``wall_time.csv`` gets a row
    (:mod:`mbrl_bound_plugin.util.wall_time`).
    """
    stopped = pathlib.Path(STOPPED_FILE)  # (the run's folder is the working directory)
    stopped.unlink(missing_ok=True)  # a rerun or resume starts unmarked
    try:
        # (quiet also here: launchers run tasks in other processes)
        with quiet_config_warnings(), wall_time.recording():
            return run(cfg)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except NumericalError as e:
        stopped.write_text(f"{e}\n", encoding="utf-8")
        print(
            f"{PROG}: stopped: {e} (model and replay buffer saved in {os.getcwd()})",
            file=sys.stderr,
        )
        if _in_sweep():
            return math.nan
        sys.exit(1)
    except CheckpointWriteError as e:
        stopped.write_text(f"{e}\n", encoding="utf-8")
        print(f"{PROG}: stopped: {e}", file=sys.stderr)
        sys.exit(1)
    except RunInterrupted as e:
        print(
            f"{PROG}: stopped by {e}; continue with resume=true hydra.run.dir={e.run_dir}",
            file=sys.stderr,
        )
        sys.exit(128 + e.signum)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``mbrl-bound`` (also ``python -m mbrl_bound_plugin``).

    Args:
        argv: command-line arguments; defaults to ``sys.argv[1:]``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        require_mbrl()
        preflight(args)
    except (UsageError, ModuleNotFoundError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [PROG, *args]
    with quiet_config_warnings():  # (hydra.main warns when it is applied, so applied here)
        hydra.main(version_base="1.1", config_path=str(mbrl_bound_conf_dir()), config_name="main")(
            _task
        )()
