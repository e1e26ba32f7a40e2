"""A run's command-line overrides: parsed once, with Hydra's own grammar and sweeper.

:func:`parse_overrides` parses them (Hydra's ``OverridesParser``, with Hydra's config
loader on the command's search path, so that ``glob(...)`` lists the same options as
Hydra), :func:`check_group_choices` refuses an unknown config-group choice, and
:func:`sweep_jobs` splits a ``-m`` sweep into its jobs with Hydra's basic sweeper.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import create_config_search_path
from hydra.core.config_loader import ConfigLoader
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Override
from hydra.errors import HydraException

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import mbrl_bound_conf_dir
from mbrl_bound_plugin.errors import UsageError, first_line

# Sweeps of more jobs than this are checked one job per swept value (see `sweep_jobs`).
MAX_CHECKED_JOBS = 256
# Groups whose choice is checked before Hydra composes (unknown choice: UsageError).
CHECKED_GROUPS = ("algorithm", "overrides", "dynamics_model", "action_optimizer", "discriminator")


@functools.cache
def config_loader() -> ConfigLoader:
    """Hydra's config loader on the command's search path (this package's configs, then
    mbrl's, added by this package's SearchPathPlugin)."""
    return ConfigLoaderImpl(
        config_search_path=create_config_search_path(str(mbrl_bound_conf_dir()))
    )


def group_options(group: str) -> list[str]:
    """Names of the configs of ``group`` on the command's search path, as Hydra lists them."""
    return sorted(config_loader().get_group_options(group, results_filter=ObjectType.CONFIG))


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Parses command-line overrides with Hydra's own grammar.

    Args:
        overrides: ``key=value`` strings, with Hydra's syntax (``+key``, ``~key``,
            quoted values, sweeps such as ``a,b``, ``choice(a,b)`` and ``glob(...)``).

    Returns:
        Hydra's parsed overrides (a ``glob`` lists the options of its config group).

    Raises:
        UsageError: an override that Hydra cannot parse, quoted in the message.
    """
    parser = OverridesParser.create(config_loader=config_loader())
    parsed = []
    for override in overrides:
        try:
            parsed += parser.parse_overrides([override])
        except HydraException as e:
            raise UsageError(f"cannot parse the override {override!r}: {first_line(e)}") from e
    return parsed


def _with_loader(override: Override) -> Override:
    """``override``, with the config loader a ``glob`` needs to list its options."""
    if override.config_loader is None and isinstance(override.value(), Glob):
        return dataclasses.replace(override, config_loader=config_loader())
    return override


def chosen_values(override: Override) -> list[str]:
    """The values an override selects: one, or each of a sweep (``a,b``, ``choice``, ``glob``).

    Args:
        override: an override from :func:`parse_overrides`.
    """
    if override.is_delete():
        return []
    if override.is_sweep_override():
        return list(_with_loader(override).sweep_string_iterator())
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
        chosen = chosen_values(override)
        if not chosen and isinstance(override.value(), Glob):
            raise UsageError(f"{group}={override.input_line.split('=', 1)[1]} matches no option")
        for choice in chosen:
            if choice not in options:
                raise UsageError(f"unknown {group} {choice!r}; choose one of: {', '.join(options)}")


def sweep_jobs(overrides: Sequence[Override]) -> list[list[str]] | None:
    """The overrides of each job of a ``-m`` sweep, as Hydra's basic sweeper makes them.

    Up to :data:`MAX_CHECKED_JOBS` jobs, Hydra's ``BasicSweeper.split_arguments`` makes
    them (the cartesian product of the sweeps, a key given twice keeping its last value).
    Beyond, only as many jobs as the longest sweep has values are returned, together
    taking every swept value at least once (value ``i`` of each sweep, or its last value).

    Args:
        overrides: the command-line overrides, from :func:`parse_overrides`.

    Returns:
        One list of override strings per job, or ``None`` when another sweeper decides
        the jobs (``hydra/sweeper=...``, ``interval(...)``).
    """
    if any(o.key_or_group == "hydra/sweeper" for o in overrides):
        return None
    if any(o.is_sweep_override() and not o.is_discrete_sweep() for o in overrides):
        return None
    overrides = [_with_loader(o) for o in overrides]
    # each key's values, as one-key jobs of Hydra's sweeper (the last override of a key wins)
    values = {o.get_key_element(): BasicSweeper.split_arguments([o], None)[0] for o in overrides}
    if math.prod(len(v) for v in values.values()) <= MAX_CHECKED_JOBS:
        return BasicSweeper.split_arguments(overrides, None)[0]
    lists = [[job[0] for job in v] for v in values.values()]
    longest = max(len(v) for v in lists)
    return [[v[min(i, len(v) - 1)] for v in lists] for i in range(longest)]
