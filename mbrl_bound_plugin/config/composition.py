"""The configuration ``mbrl-bound`` runs: composed by Hydra, checked once, completed.

:func:`compose` is the Python door to exactly what the command would run::

    cfg = mbrl_bound_plugin.compose(["algorithm=bound", "overrides=mbpo_inv_pendulum_v5"])

It composes ``conf/main.yaml`` with this package's and mbrl's config groups (the same
search path as the command), resolves ``device: auto`` and makes the same checks, so a
configuration the command would refuse is refused here with the same :class:`UsageError`.
The command's :func:`mbrl_bound_plugin.cli.main.preflight` composes each job through
:func:`compose_checked`, from overrides it parsed once.

The pieces, by role: :mod:`.overrides` (parsing the overrides, group choices, sweeps),
:mod:`.value_types` (every value's type), :mod:`.checks` (the ranges, and what each
algorithm needs), :mod:`.schema` (the structured configs of the bound's own keys).
:func:`complete_config` then sizes the replay buffer for the whole run
(``algorithm.dataset_size``), which mbrl sizes too small.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import hydra
import omegaconf
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException, HydraException

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import mbrl_bound_conf_dir
from mbrl_bound_plugin.config.checks import (  # noqa: F401 (re-exported)
    MBPO_FAMILY,
    REQUIRED_OVERRIDES,
    RESUMABLE,
    check_config,
    check_values,
    source_key,
)
from mbrl_bound_plugin.config.overrides import (  # noqa: F401 (re-exported)
    CHECKED_GROUPS,
    MAX_CHECKED_JOBS,
    check_group_choices,
    chosen_values,
    group_options,
    parse_overrides,
    sweep_jobs,
)
from mbrl_bound_plugin.errors import UsageError, first_line
from mbrl_bound_plugin.util.device import resolve_device  # noqa: F401 (re-exported)


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


# ----------------------------------------------------------------- completion


def replay_buffer_capacity(cfg: omegaconf.DictConfig) -> int | None:
    """Transitions a run adds to its replay buffer: what ``algorithm.dataset_size`` defaults to.

    mbrl's ``create_replay_buffer`` makes a buffer of ``overrides.num_steps`` transitions
    when ``algorithm.dataset_size`` is unset, but the runs add more, and overwrite their
    first (exploration) transitions near the end:

    - MBPO (``mbpo``, ``bound``, ``mbpo_resumable``): ``initial_exploration_steps``,
      then whole epochs of ``epoch_length`` steps until ``num_steps`` are reached;
    - PETS: ``initial_exploration_steps`` (``trial_length``), then episodes until
      ``num_steps`` are reached; the last may run past it by up to an episode's
      length minus one (:func:`mbrl_bound_plugin.env.factory.episode_limit`).

    Args:
        cfg: a checked configuration (:func:`check_config`).

    Returns:
        The capacity, or ``None`` for an algorithm that sizes its own buffer (planet).
    """
    name = cfg.algorithm.name
    if name in MBPO_FAMILY:
        epoch = cfg.overrides.epoch_length
        steps = math.ceil(cfg.overrides.num_steps / epoch) * epoch
        return cfg.algorithm.initial_exploration_steps + steps
    if name == "pets":
        from mbrl_bound_plugin.env.factory import episode_limit

        limit = episode_limit(cfg)
        overshoot = limit - 1 if limit else 0
        return cfg.algorithm.initial_exploration_steps + cfg.overrides.num_steps + overshoot
    return None


def complete_config(cfg: omegaconf.DictConfig) -> dict[str, Any]:
    """Fills in, in place, the settings mbrl would choose badly when they are unset.

    ``algorithm.dataset_size`` (the replay buffer's capacity) becomes
    :func:`replay_buffer_capacity`, so that no transition of the run is overwritten; a
    value the user set (not 0 or null, which mbrl reads as unset) is kept. Both the
    command and :func:`compose` call this, after :func:`check_config`.

    Args:
        cfg: a checked configuration.

    Returns:
        The keys filled in and their values (empty when nothing was missing).
    """
    filled: dict[str, Any] = {}
    if not cfg.algorithm.get("dataset_size", None):
        capacity = replay_buffer_capacity(cfg)
        if capacity is not None:
            with omegaconf.open_dict(cfg.algorithm):
                cfg.algorithm.dataset_size = capacity
            filled["algorithm.dataset_size"] = capacity
    return filled


def _config_keys(cfg: omegaconf.DictConfig) -> list[str]:
    """Every dotted key of ``cfg`` (nodes too), unresolved."""
    keys = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                keys.append(f"{prefix}{key}")
                walk(value, f"{prefix}{key}.")

    walk(omegaconf.OmegaConf.to_container(cfg, resolve=False), "")
    return keys


def _hydra_compose(overrides: list[str]) -> omegaconf.DictConfig:
    """Hydra's composition of ``main`` (with the ``hydra`` node), on the command's search path."""
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
            return hydra.compose("main", overrides=overrides, return_hydra_config=True)
    finally:
        if outer is not None:
            GlobalHydra.instance().clear()
            GlobalHydra.instance().initialize(outer)


def check_sweep_base(overrides: Sequence[Override]) -> None:
    """Refuses a ``-m`` command whose sweep-free part Hydra cannot compose.

    Before it launches any job, Hydra's multirun composes the command without its sweeps:
    a swept group (``overrides=a,b``) keeps its default choice there. A plain
    ``overrides.KEY=VALUE`` for a key that only the swept choices have then fails in
    Hydra's own multi-line error, although every job composes. ``++KEY=VALUE`` (add or
    replace) composes in both.

    Args:
        overrides: the command's parsed overrides, jobs already checked one by one.

    Raises:
        UsageError: naming the override and the ``++`` form that works.
    """
    swept = [o.key_or_group for o in overrides if o.is_sweep_override()]
    if not swept:
        return
    base = [o.input_line for o in overrides if not o.is_sweep_override()]
    try:
        _hydra_compose(base)
    except ConfigCompositionException as e:
        culprit = next(
            (
                o
                for o in overrides
                if not o.is_sweep_override()
                and not o.input_line.startswith("+")
                and any(o.key_or_group.startswith(f"{group}.") for group in swept)
            ),
            None,
        )
        if culprit is None:
            raise UsageError(f"with -m, the command without its sweeps: {first_line(e)}") from e
        group = culprit.key_or_group.split(".", 1)[0]
        raise UsageError(
            f"{culprit.input_line}: with -m, Hydra first composes the command without its "
            f"sweeps, with {group}'s default choice, which has no {culprit.key_or_group}; "
            f"write ++{culprit.input_line}"
        ) from e


def _explain_override_error(
    error: ConfigCompositionException, lines: Sequence[str], overrides: Sequence[Override]
) -> str | None:
    """One line for an override Hydra could not apply to a key, with the closest key.

    Args:
        error: Hydra's error.
        lines: the overrides Hydra composed with (one job's, for a sweep).
        overrides: the parsed command-line overrides (to quote the one that failed).

    Returns:
        The line, or ``None`` when the error is of another kind.
    """
    patterns = {
        "override": r"Could not override '([^']+)'",
        "delete": r"Could not delete from config\. '([^']+)' does not exist",
        "append": r"Could not append to config\. An item is already at '([^']+)'",
    }
    found = [(kind, m) for kind, p in patterns.items() if (m := re.match(p, str(error)))]
    if not found:
        return None
    kind, match = found[0]
    key = match.group(1)
    culprits = [o for o in overrides if o.key_or_group == key]
    line = culprits[-1].input_line if culprits else key
    if kind == "append":
        value = line.split("=", 1)[1] if "=" in line else "VALUE"
        return (
            f"Could not append {line!r}: {key} is already set; write {key}={value} to change "
            f"it (or ++{key}={value})"
        )
    try:  # the keys there are, without the override(s) that failed
        rest = [x for x in lines if x.split("=", 1)[0].lstrip("+~") != key]
        keys = _config_keys(_hydra_compose(rest))
    except HydraException:
        keys = []
    if not key.startswith("hydra."):
        keys = [k for k in keys if not k.startswith("hydra.") and k != "hydra"]
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.75)
    if kind == "delete":
        hint = f"; did you mean ~{close[0]}?" if close else ""
        return f"Could not delete '{key}': there is no such key{hint}"
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"Could not override '{key}': there is no such key{hint} (+{line} adds it as a new key)"


class ComposedRun(NamedTuple):
    """A run's checked configuration and the overrides Hydra records as the job's own."""

    cfg: omegaconf.DictConfig
    # (Hydra's ``hydra.overrides.task``: the overrides but those of the ``hydra`` node)
    task_overrides: tuple[str, ...]


def compose_checked(lines: Sequence[str], overrides: Sequence[Override]) -> ComposedRun:
    """One run's configuration, composed by Hydra, its device resolved, checked, completed.

    The overrides are not parsed again here: the caller parsed them once
    (:func:`mbrl_bound_plugin.config.overrides.parse_overrides`) and checked their group
    choices.

    Args:
        lines: the run's overrides as strings (one job's, for a sweep); Hydra composes them.
        overrides: the parsed command-line overrides, quoted when one cannot be applied.

    Returns:
        The configuration (without the ``hydra`` node), and the job's task overrides.

    Raises:
        UsageError: an unknown key (with the closest key), an override Hydra refuses, a
            value of the wrong type, or a configuration the chosen algorithm cannot run.
    """
    from mbrl_bound_plugin.env.factory import check_env

    try:
        cfg = _hydra_compose(list(lines))
    except HydraException as e:
        explained = (
            _explain_override_error(e, lines, overrides)
            if isinstance(e, ConfigCompositionException)
            else None
        )
        raise UsageError(explained or first_line(e)) from e
    choices = dict(cfg.hydra.runtime.choices)
    task_overrides = tuple(cfg.hydra.overrides.task)
    with omegaconf.open_dict(cfg):
        del cfg["hydra"]
    cfg.device = resolve_device(cfg.device)
    check_config(cfg, choices)
    check_env(cfg)
    complete_config(cfg)
    return ComposedRun(cfg, task_overrides)


def compose(overrides: Sequence[str] = ()) -> omegaconf.DictConfig:
    """The configuration ``mbrl-bound OVERRIDES`` would run, for use from Python.

    Composes ``conf/main.yaml`` with the given overrides on the command's search path
    (this package's configs, then mbrl's own ``examples/conf``), resolves ``device:
    auto``, makes the command's checks (the types of every value, :func:`check_config`,
    and :func:`mbrl_bound_plugin.env.factory.check_env` for the environment) and fills in
    what mbrl would choose badly (:func:`complete_config`). The ``hydra`` node is left out.

    Args:
        overrides: Hydra overrides, as on the command line (e.g. ``"algorithm=bound"``,
            ``"overrides=mbpo_inv_pendulum_v5"``, ``"+overrides.trial_length=200"``).
            Sweeps are for the command's ``-m`` mode and are refused here.

    Returns:
        The composed configuration, with ``device`` resolved.

    Raises:
        UsageError: a sweep, an unknown group choice or key (with the closest key), an
            override Hydra refuses, or a configuration the chosen algorithm cannot run.
    """
    parsed = parse_overrides(overrides)
    sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
    if sweeps:
        raise UsageError(f"compose() makes one configuration; {sweeps[0]} is a sweep")
    check_group_choices(parsed)
    return compose_checked(list(overrides), parsed).cfg
