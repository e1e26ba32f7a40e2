"""The configuration ``mbrl-bound`` runs: composition, device, and the checks made at start.

:func:`compose` is the Python door to exactly what the command would run::

    cfg = mbrl_bound_plugin.compose(["algorithm=bound", "overrides=mbpo_inv_pendulum_v5"])

It composes ``conf/main.yaml`` with this package's and mbrl's config groups (the same
search path as the command), resolves ``device: auto`` and makes the same checks, so a
configuration the command would refuse is refused here with the same :class:`UsageError`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence

import hydra
import omegaconf
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Override
from hydra.errors import HydraException
from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import (
    mbrl_bound_conf_dir,
    mbrl_examples_conf_dir,
)
from mbrl_bound_plugin.errors import UsageError, first_line

# Keys of `overrides` that each algorithm's training code reads directly (the keys it
# reads through interpolations are checked by resolving the config).
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
REQUIRED_OVERRIDES["mbpo_resumable"] = REQUIRED_OVERRIDES["mbpo"]
# Algorithms run by this package's training loop: they checkpoint and resume.
RESUMABLE = ("bound", "mbpo_resumable")
# Groups whose choice is checked before Hydra composes (unknown choice: UsageError).
CHECKED_GROUPS = ("algorithm", "overrides", "dynamics_model", "action_optimizer", "discriminator")


@contextlib.contextmanager
def quiet_config_warnings() -> Iterator[None]:
    """Silences, inside the block only, two warnings no user of this package can act on.

    mbrl's config files carry the Hydra 1.0 header ``# @package _group_``, which only
    ``version_base="1.1"`` honours; under it Hydra warns about the header on every file
    and about the version base itself.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated keyword in package header.*")
        warnings.filterwarnings("ignore", message=r'(?s).*version_base="1\.1" selects Hydra 1\.1')
        yield


def group_options(group: str) -> list[str]:
    """Names of the configs of ``group`` in this package's and mbrl's config dirs."""
    names: set[str] = set()
    for root in (mbrl_bound_conf_dir(), mbrl_examples_conf_dir()):
        if root is not None and (root / group).is_dir():
            names.update(p.stem for p in (root / group).glob("*.yaml"))
    return sorted(names)


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Parses command-line overrides with Hydra's own grammar.

    Args:
        overrides: ``key=value`` strings, with Hydra's syntax (``+key``, ``~key``,
            quoted values, sweeps such as ``a,b`` and ``choice(a,b)``).

    Returns:
        Hydra's parsed overrides.

    Raises:
        UsageError: an override that Hydra cannot parse.
    """
    parser = OverridesParser.create()
    parsed = []
    for override in overrides:
        try:
            parsed += parser.parse_overrides([override])
        except HydraException as e:
            raise UsageError(f"cannot parse the override {override!r}: {first_line(e)}") from e
    return parsed


def chosen_values(override: Override, options: Iterable[str]) -> list[str]:
    """The values an override selects: one, or each of a sweep (``a,b``, ``choice``, ``glob``).

    Args:
        override: a parsed override.
        options: the values a ``glob(...)`` sweep is matched against.
    """
    if override.is_delete():
        return []
    value = override.value()
    if isinstance(value, Glob):
        return value.filter(list(options))
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    return [str(override.value())]


def check_group_choices(overrides: Sequence[Override]) -> None:
    """Refuses an unknown option of a config group (also inside a sweep).

    Skipped when the overrides extend Hydra's search path (the options are then unknown
    here).

    Raises:
        UsageError: naming the group, the unknown choice and the valid ones.
    """
    if any(o.key_or_group.startswith("hydra.searchpath") for o in overrides):
        return
    for override in overrides:
        group = override.key_or_group
        if group not in CHECKED_GROUPS:
            continue
        options = group_options(group)
        chosen = chosen_values(override, options)
        if not chosen and isinstance(override.value(), Glob):
            raise UsageError(f"{group}={override.input_line.split('=', 1)[1]} matches no option")
        for choice in chosen:
            if choice not in options:
                raise UsageError(f"unknown {group} {choice!r}; choose one of: {', '.join(options)}")


def resolve_device(device: str) -> str:
    """Turns ``auto`` into ``cuda:0`` or ``cpu``; refuses CUDA where there is none.

    Args:
        device: the configured device (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Returns:
        A torch device string.

    Raises:
        UsageError: CUDA requested on a machine without it, or an invalid device string.
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


def check_config(
    cfg: omegaconf.DictConfig, choices: Mapping[str, str | None] | None = None
) -> None:
    """Checks that the composed config has what ``cfg.algorithm.name`` needs.

    Args:
        cfg: the composed configuration.
        choices: the config-group choices (Hydra's ``hydra.runtime.choices``), used to
            name the overrides file in messages.

    Raises:
        UsageError: unknown algorithm name, ``resume=true`` for an algorithm that cannot
            resume, or a key the algorithm reads missing from the overrides.
    """
    name = cfg.algorithm.get("name", None)
    if name not in REQUIRED_OVERRIDES:
        raise UsageError(
            f"unknown algorithm.name {name!r}; choose one of: {', '.join(REQUIRED_OVERRIDES)}"
        )
    resume = cfg.get("resume", False)
    if resume is True and name not in RESUMABLE:
        raise UsageError(
            f"resume=true needs algorithm=bound or mbpo_resumable; mbrl's {name} cannot "
            "continue a run (resume=auto starts it afresh)"
        )
    choice = (choices or {}).get("overrides") or "?"
    for key in REQUIRED_OVERRIDES[name]:
        if key not in cfg.overrides:
            raise UsageError(f"overrides={choice} lacks key {key!r}, needed by algorithm={name}")
    sections = ["algorithm", "dynamics_model", "overrides"]
    sections += ["discriminator"] if name in RESUMABLE else []
    try:
        for section in sections:  # (action_optimizer is resolved through algorithm.agent)
            omegaconf.OmegaConf.to_container(cfg[section], resolve=True, throw_on_missing=False)
    except (InterpolationKeyError, InterpolationResolutionError) as e:
        raise UsageError(
            f"overrides={choice} cannot serve algorithm={name}: {first_line(e)} (at {e.full_key})"
        ) from e


def compose(overrides: Sequence[str] = ()) -> omegaconf.DictConfig:
    """The configuration ``mbrl-bound OVERRIDES`` would run, for use from Python.

    Composes ``conf/main.yaml`` with the given overrides on the command's search path
    (this package's configs, then mbrl's own ``examples/conf``), resolves ``device:
    auto``, and makes the command's checks. The ``hydra`` node is left out.

    Args:
        overrides: Hydra overrides, as on the command line (e.g. ``"algorithm=bound"``,
            ``"overrides=mbpo_inv_pendulum_v5"``, ``"+overrides.trial_length=200"``).
            Sweeps are for the command's ``-m`` mode and are refused here.

    Returns:
        The composed configuration, with ``device`` resolved.

    Raises:
        UsageError: a sweep, an unknown group choice, an override Hydra refuses, or a
            configuration the chosen algorithm cannot run.
    """
    parsed = parse_overrides(overrides)
    sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
    if sweeps:
        raise UsageError(f"compose() makes one configuration; {sweeps[0]} is a sweep")
    check_group_choices(parsed)
    global_hydra = GlobalHydra.instance()
    outer = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()  # (compose inside another Hydra app: put its state back after)
    try:
        with (
            quiet_config_warnings(),
            hydra.initialize_config_dir(
                version_base="1.1", config_dir=str(mbrl_bound_conf_dir()), job_name="mbrl-bound"
            ),
        ):
            cfg = hydra.compose("main", overrides=list(overrides), return_hydra_config=True)
    except HydraException as e:
        raise UsageError(first_line(e)) from e
    finally:
        if outer is not None:
            GlobalHydra.instance().clear()
            GlobalHydra.instance().initialize(outer)
    choices = dict(cfg.hydra.runtime.choices)
    with omegaconf.open_dict(cfg):
        del cfg["hydra"]
    cfg.device = resolve_device(cfg.device)
    check_config(cfg, choices)
    return cfg
