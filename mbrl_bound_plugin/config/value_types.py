"""The type of every value a run reads, checked against the shipped defaults.

Each leaf of the composed configuration must have the type of the same key in the
configuration the chosen config groups ship (the same ``algorithm``, ``overrides``,
``dynamics_model``, ... without the user's value overrides):

- an integer (not a boolean) where the default is one; a count (an integer shipped
  ``>= 0``) is not negative;
- a finite number where the default is a float (an integer also serves), or where the
  key is a float in any config file the group ships (``overrides.sac_target_entropy``
  is ``-1`` in some, ``-0.5`` in others): NaN and inf are refused;
- a boolean, a string or a list where the default is one (a list of numbers holds
  finite numbers);
- never null, but for the keys documented as nullable (:data:`NULLABLE`).

The bound's own keys are first merged into their structured configs
(:mod:`mbrl_bound_plugin.config.schema`), which also know their choices and nullable
keys. Keys the defaults do not have (``+key=...``) and keys whose default is null pass;
the range checks (:mod:`mbrl_bound_plugin.config.checks`) check them where they matter.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any

import omegaconf
from hydra.errors import HydraException

from mbrl_bound_plugin.config.schema import check_schema
from mbrl_bound_plugin.errors import UsageError

# Keys that may be null, with the type of their other values: the run's seed (null: not
# seeded), the bound's `bound_batch_size` (null: all rows) and `reward_floor` (null: none,
# "scaled" mode), the model's `model_min_logvar`, and mbrl's keys where null means "unset".
NULLABLE: dict[str, type] = {
    "seed": int,
    "algorithm.model_wrapper.bound_batch_size": int,
    "algorithm.bound_agent.reward_floor": float,
    "algorithm.dataset_size": int,
    "overrides.num_elites": int,
    "overrides.num_epochs_train_model": int,
    "overrides.patience": int,
    "overrides.trial_length": int,
}
# Nullable wherever they are (their last dotted part).
NULLABLE_LEAVES: dict[str, type] = {"model_min_logvar": float}
# Keys the range checks check in full, with their own words: `resume` (a boolean or
# "auto") and `seed` (a whole number from 0 to 2**32 - 1, or null).
UNTYPED = frozenset({"resume", "seed"})
# Config groups whose files are scanned for keys that are floats in any of them.
_GROUPS = ("algorithm", "overrides", "dynamics_model", "action_optimizer", "discriminator")
_INTERPOLATION = re.compile(r"\$\{([\w.]+)\}")


def show(value: Any) -> str:
    """A value as the user would write it on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, omegaconf.DictConfig | omegaconf.ListConfig):
        return str(omegaconf.OmegaConf.to_container(value, resolve=True))
    return str(value)


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (booleans are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite integer or float (booleans are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def source_key(cfg: omegaconf.DictConfig, key: str) -> str:
    """The key a user sets to change ``key``: interpolations (``${overrides.x}``) followed.

    Args:
        cfg: the composed configuration.
        key: a dotted key, e.g. ``algorithm.initial_exploration_steps``.

    Returns:
        e.g. ``overrides.trial_length`` for PETS' ``algorithm.initial_exploration_steps``.
    """
    seen = set()
    while key not in seen:
        seen.add(key)
        parent_key, _, leaf = key.rpartition(".")
        parent = omegaconf.OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if not isinstance(parent, omegaconf.DictConfig) or leaf not in parent:
            return key
        if not omegaconf.OmegaConf.is_interpolation(parent, leaf):
            return key
        raw = omegaconf.OmegaConf.to_container(parent, resolve=False)[leaf]
        match = _INTERPOLATION.fullmatch(str(raw))
        if match is None:
            return key
        key = match.group(1)
    return key


@functools.cache
def _shipped_defaults(choices: tuple[tuple[str, str], ...]) -> dict[str, Any] | None:
    """The configuration of these config-group choices without value overrides, as plain data
    (``None`` when it does not compose, e.g. a choice of another search path)."""
    from mbrl_bound_plugin.config.composition import _hydra_compose

    try:
        cfg = _hydra_compose([f"{group}={choice}" for group, choice in choices])
    except HydraException:
        return None
    with omegaconf.open_dict(cfg):
        del cfg["hydra"]
    return resolved_sections(cfg)


def resolved_sections(cfg: omegaconf.DictConfig) -> dict[str, Any]:
    """``cfg`` as plain data, resolved; without the sections that do not resolve (e.g.
    ``action_optimizer`` beside MBPO's overrides, which only PETS reads)."""
    plain = {}
    for key in cfg:
        try:
            node = omegaconf.OmegaConf.select(cfg, str(key), throw_on_missing=False)
            if isinstance(node, omegaconf.DictConfig | omegaconf.ListConfig):
                node = omegaconf.OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
        except omegaconf.errors.OmegaConfBaseException:
            continue
        plain[key] = node
    return plain


@functools.cache
def float_keys() -> frozenset[str]:
    """Dotted keys that are a float in some config file of :data:`_GROUPS`."""
    from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import (
        mbrl_bound_conf_dir,
        mbrl_examples_conf_dir,
    )

    found: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}")
        elif isinstance(node, float):
            found.add(prefix)

    for root in (mbrl_bound_conf_dir(), mbrl_examples_conf_dir()):
        for group in _GROUPS:
            for path in sorted(root.glob(f"{group}/*.yaml")) if root is not None else ():
                try:
                    node = omegaconf.OmegaConf.to_container(omegaconf.OmegaConf.load(path))
                except (OSError, omegaconf.errors.OmegaConfBaseException):
                    continue
                walk(node, group)
    return frozenset(found)


def _nullable(key: str) -> type | None:
    return NULLABLE.get(key) or NULLABLE_LEAVES.get(key.rpartition(".")[2])


def _wanted(key: str, default: Any, value: Any, source: str) -> str | None:
    """What ``value`` at ``key`` should be, given its ``default``; ``None`` if it is fine.

    ``source`` is the key the user sets (``key``, or the key it interpolates).
    """
    nullable = _nullable(key)
    if value is None:
        return None if nullable is not None or default is None else "a value, not null"
    if default is None:
        default = nullable() if nullable is not None else None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if is_int(default) and not {key, source} & float_keys():
        if not is_int(value):
            return "an integer"
        if default >= 0 and value < 0:
            return "an integer >= 0"
        return None
    if isinstance(default, int | float):
        return None if is_number(value) else "a finite number"
    if isinstance(default, str):
        return None if isinstance(value, str) else f"a string (quoted: {source}='{show(value)}')"
    if isinstance(default, list):
        if not isinstance(value, list):
            return "a list, e.g. [1, 2]"
        numbers = default and all(isinstance(v, int | float) for v in default)
        if numbers and not all(is_number(v) for v in value):
            return "a list of finite numbers"
        return None
    if isinstance(default, Mapping):
        return None if isinstance(value, Mapping) else "a mapping of keys to values"
    return None


def check_types(cfg: omegaconf.DictConfig, choices: Mapping[str, str | None]) -> None:
    """Refuses a value whose type is not that of the same key in the shipped defaults.

    Args:
        cfg: the composed configuration (without the ``hydra`` node), its interpolations
            resolvable.
        choices: the config-group choices (Hydra's ``hydra.runtime.choices``).

    Raises:
        UsageError: ``KEY=VALUE: use WHAT``, naming the key the user sets.
    """
    chosen = tuple(
        sorted((g, c) for g, c in choices.items() if c is not None and not g.startswith("hydra"))
    )
    defaults = _shipped_defaults(chosen)
    if defaults is None:
        return
    values = resolved_sections(cfg)
    check_schema(cfg, values)  # the bound's own keys: types and choices

    def walk(node: Mapping[str, Any], shipped: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if key not in shipped or f"{prefix}{key}" in UNTYPED:
                continue
            default = shipped[key]
            if isinstance(default, Mapping) and isinstance(value, Mapping):
                walk(value, default, f"{prefix}{key}.")
                continue
            if default == "???" or value == "???":
                continue
            source = source_key(cfg, prefix + key)
            wanted = _wanted(prefix + key, default, value, source)
            if wanted is not None:
                raise UsageError(f"{source}={show(value)}: use {wanted}")

    walk(values, defaults, "")
