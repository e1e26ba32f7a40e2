"""The ``mbrl-bound`` command: a Hydra app with the semantics of mbrl's ``examples/main.py``.

It composes ``conf/main.yaml`` (the same keys as mbrl's ``main.yaml``), resolves the
device, builds the environment and dispatches on ``algorithm.name`` to mbrl's own
``pets.train``, ``mbpo.train`` and ``planet.train``, or to this package's ``train``
for ``algorithm=bound``. Bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import pathlib
import sys
import warnings
from collections.abc import Sequence

import hydra
import numpy as np
import omegaconf
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import (
    mbrl_bound_conf_dir,
    mbrl_examples_conf_dir,
)
from mbrl_bound_plugin.agent import NumericalError
from mbrl_bound_plugin.checkpoint import CheckpointWriteError, RunInterrupted
from mbrl_bound_plugin.envs import UsageError, make_env

PROG = "mbrl-bound"

# mbrl's config files carry the Hydra 1.0 header `# @package _group_`; under
# version_base="1.1" (which honours it) Hydra warns on every file. Not actionable
# for users of this command, so silenced here.
warnings.filterwarnings("ignore", message=".*deprecated keyword in package header.*")
warnings.filterwarnings("ignore", message=r'(?s).*version_base="1\.1" selects Hydra 1\.1')

# Keys of `overrides` that each algorithm's training code reads directly (the
# keys it reads through interpolations are checked by resolving the config).
REQUIRED_OVERRIDES: dict[str, tuple[str, ...]] = {
    "mbpo": (
        "num_steps",
        "epoch_length",
        "freq_train_model",
        "effective_model_rollouts_per_step",
        "rollout_schedule",
        "num_sac_updates_per_step",
        "sac_updates_every_steps",
        "num_epochs_to_retain_sac_buffer",
        "sac_batch_size",
        "model_lr",
        "model_wd",
        "model_batch_size",
        "validation_ratio",
    ),
    "pets": (
        "num_steps",
        "model_lr",
        "model_wd",
        "model_batch_size",
        "validation_ratio",
    ),
    "planet": (),
}
REQUIRED_OVERRIDES["bound"] = REQUIRED_OVERRIDES["mbpo"]
# Groups whose choice is checked before Hydra starts (unknown choice: exit 2).
CHECKED_GROUPS = ("algorithm", "overrides", "dynamics_model", "action_optimizer", "discriminator")


def group_options(group: str) -> list[str]:
    """Names of the configs of ``group`` in this package's and mbrl's config dirs."""
    names: set[str] = set()
    for root in (mbrl_bound_conf_dir(), mbrl_examples_conf_dir()):
        if root is not None and (root / group).is_dir():
            names.update(p.stem for p in (root / group).glob("*.yaml"))
    return sorted(names)


def _split_override(arg: str) -> tuple[str, str] | None:
    if arg.startswith("-") or "=" not in arg:
        return None
    key, value = arg.split("=", 1)
    return key.lstrip("+~"), value


def _nearest_existing(path: pathlib.Path) -> pathlib.Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def preflight(argv: Sequence[str]) -> None:
    """Checks, before Hydra starts, what can be checked on the command line alone.

    Args:
        argv: the command-line arguments (without the program name).

    Raises:
        UsageError: an unknown config group choice or a non-writable output directory.
    """
    values = dict(kv for kv in map(_split_override, argv) if kv is not None)
    extra_search_path = any(k.startswith("hydra.searchpath") for k in values)
    for group in CHECKED_GROUPS:
        if group not in values or extra_search_path:
            continue
        options = group_options(group)
        for choice in values[group].split(","):  # multirun sweeps: a,b,c
            if choice not in options:
                raise UsageError(f"unknown {group} {choice!r}; choose one of: {', '.join(options)}")
    out_dirs = {"root_dir": values.get("root_dir", "./exp")}
    out_dirs |= {k: values[k] for k in ("hydra.run.dir", "hydra.sweep.dir") if k in values}
    for key, out in out_dirs.items():
        if "${" in out:
            continue
        existing = _nearest_existing(pathlib.Path(out))
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise UsageError(
                f"output directory {out!r} is not writable ({existing} is not a writable "
                f"directory); pass {key}=SOME/WRITABLE/DIR"
            )


def resolve_device(device: str) -> str:
    """Turns ``auto`` into ``cuda:0`` or ``cpu``; refuses CUDA where there is none.

    Args:
        device: the configured device (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Returns:
        A torch device string.
    """
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device={device} but CUDA is not available here; use device=cpu or auto")
    try:
        torch.device(device)
    except RuntimeError as e:
        raise UsageError(f"invalid device={device!r}; use auto, cpu or cuda:N") from e
    return device


def check_config(cfg: omegaconf.DictConfig) -> None:
    """Checks that the composed config has what ``cfg.algorithm.name`` needs.

    Args:
        cfg: the composed configuration.

    Raises:
        UsageError: unknown algorithm name, or a key missing from the overrides.
    """
    name = cfg.algorithm.get("name", None)
    if name not in REQUIRED_OVERRIDES:
        raise UsageError(
            f"unknown algorithm.name {name!r}; choose one of: {', '.join(REQUIRED_OVERRIDES)}"
        )
    resume = cfg.get("resume", False)
    if resume is True and name != "bound":
        raise UsageError(
            f"resume=true needs algorithm=bound; mbrl's {name} cannot continue a run "
            "(resume=auto starts it afresh)"
        )
    choice = _choice("overrides")
    for key in REQUIRED_OVERRIDES[name]:
        if key not in cfg.overrides:
            raise UsageError(f"overrides={choice} lacks key {key!r}, needed by algorithm={name}")
    sections = ["algorithm", "dynamics_model", "overrides"]
    sections += ["discriminator"] if name == "bound" else []
    try:
        for section in sections:  # (action_optimizer is resolved through algorithm.agent)
            omegaconf.OmegaConf.to_container(cfg[section], resolve=True, throw_on_missing=False)
    except (InterpolationKeyError, InterpolationResolutionError) as e:
        missing = str(e).splitlines()[0]
        raise UsageError(
            f"overrides={choice} cannot serve algorithm={name}: {missing} (at {e.full_key})"
        ) from e


def _choice(group: str) -> str:
    try:
        return str(HydraConfig.get().runtime.choices.get(group))
    except ValueError:  # not running under Hydra
        return "?"


def run(cfg: omegaconf.DictConfig) -> float:
    """Trains ``cfg.algorithm.name`` on the configured task (mbrl's main.py semantics).

    Args:
        cfg: the composed configuration; ``cfg.device`` may be ``auto``.

    Returns:
        What the algorithm's ``train`` returns (its best episode or evaluation return).
    """
    cfg.device = resolve_device(cfg.device)
    check_config(cfg)
    name = cfg.algorithm.name
    env, term_fn, reward_fn = make_env(cfg)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    work_dir = os.getcwd()
    if name == "pets":
        import mbrl.algorithms.pets as pets

        result = pets.train(env, term_fn, reward_fn, cfg, work_dir=work_dir)
    elif name == "mbpo":
        import mbrl.algorithms.mbpo as mbpo

        test_env, *_ = make_env(cfg)
        result = mbpo.train(env, test_env, term_fn, cfg, work_dir=work_dir)
    elif name == "planet":
        import mbrl.algorithms.planet as planet

        result = planet.train(env, cfg, work_dir=work_dir)
    else:
        from mbrl_bound_plugin.algorithm import train

        test_env, *_ = make_env(cfg)
        result = train(env, test_env, term_fn, cfg, work_dir=work_dir)
    print(f"{PROG}: results in {pathlib.Path(work_dir) / 'results.csv'}")
    return float(result)


@hydra.main(version_base="1.1", config_path=str(mbrl_bound_conf_dir()), config_name="main")
def _hydra_main(cfg: omegaconf.DictConfig) -> float:
    try:
        return run(cfg)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except NumericalError as e:
        print(
            f"{PROG}: stopped: {e} (model and replay buffer saved in {os.getcwd()})",
            file=sys.stderr,
        )
        sys.exit(1)
    except CheckpointWriteError as e:
        print(f"{PROG}: stopped: {e}", file=sys.stderr)
        sys.exit(1)
    except RunInterrupted as e:
        print(f"{PROG}: stopped by {e}", file=sys.stderr)
        sys.exit(128 + e.signum)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``mbrl-bound`` (also ``python -m mbrl_bound_plugin``).

    Args:
        argv: command-line arguments; defaults to ``sys.argv[1:]``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        preflight(args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [PROG, *args]
    _hydra_main()
