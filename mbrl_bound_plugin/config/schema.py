"""Structured configs (OmegaConf dataclasses) of the bound's own keys: their types and choices.

The schemas of ``algorithm`` (``conf/algorithm/bound*.yaml``: the model wrapper, the
augmented reward's agent, ``disc_max_rows``) and of ``discriminator``
(``conf/discriminator/mlp.yaml``) are stored in Hydra's ConfigStore as
``schema/bound`` and ``schema/discriminator`` (``algorithm.optimism`` is part of the
former). They declare types only: every default
stays in the YAML files. :func:`check_schema` merges a run's values of these keys into
their schema, where OmegaConf refuses a value of another type or a choice outside an
enum (``mode`` is ``scaled`` or ``bound``); the ranges are checked in
:mod:`mbrl_bound_plugin.config.checks`.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from typing import Any, Optional

import omegaconf
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from mbrl_bound_plugin.errors import UsageError
from mbrl_bound_plugin.kl_budget import OPTIMISM_METHODS

BoundMode = enum.Enum("BoundMode", {name: name for name in ("scaled", "bound")})
RatioScale = enum.Enum("RatioScale", {name: name for name in ("none", "reward_std", "reward_rms")})
OptimismMethod = enum.Enum("OptimismMethod", {name: name for name in OPTIMISM_METHODS})


@dataclasses.dataclass
class ModelWrapperSchema:
    """``algorithm.model_wrapper``: the model step's bound term."""

    _target_: str = MISSING
    beta: float = MISSING
    bound_batch_size: Optional[int] = None  # noqa: UP045 (OmegaConf reads Optional)
    clamp_value: bool = MISSING


@dataclasses.dataclass
class BoundAgentSchema:
    """``algorithm.bound_agent``: SAC's augmented reward."""

    _target_: str = MISSING
    mode: BoundMode = MISSING
    lam: float = MISSING
    clip: float = MISSING
    reward_floor: Optional[float] = None  # noqa: UP045
    gamma: float = MISSING
    scale: RatioScale = MISSING
    warmup_epochs: int = MISSING
    policy_ratio: bool = MISSING
    ratio_centering: bool = MISSING


@dataclasses.dataclass
class OptimismSchema:
    """``algorithm.optimism``: the model's budgeted tilt at rollout time."""

    method: OptimismMethod = MISSING
    kl_budget: float = MISSING
    num_samples: int = MISSING


@dataclasses.dataclass
class BoundAlgorithmSchema:
    """The bound's own keys of ``algorithm`` (``conf/algorithm/bound*.yaml``)."""

    model_wrapper: ModelWrapperSchema = dataclasses.field(default_factory=ModelWrapperSchema)
    bound_agent: BoundAgentSchema = dataclasses.field(default_factory=BoundAgentSchema)
    optimism: OptimismSchema = dataclasses.field(default_factory=OptimismSchema)
    disc_max_rows: int = MISSING


@dataclasses.dataclass
class DiscriminatorSchema:
    """``discriminator`` (``conf/discriminator/mlp.yaml``)."""

    _target_: str = MISSING
    obs_dim: int = MISSING
    act_dim: int = MISSING
    hid_size: int = MISSING
    num_layers: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    batch_size: int = MISSING
    num_updates: int = MISSING
    holdout_ratio: float = MISSING
    noise_scale: float = MISSING
    spectral_norm: bool = MISSING
    grad_penalty: float = MISSING
    patience: int = MISSING
    eval_every: int = MISSING
    device: str = MISSING


# the config node each schema describes, by its name in the ConfigStore's `schema` group
SCHEMAS: dict[str, tuple[str, type]] = {
    "bound": ("algorithm", BoundAlgorithmSchema),
    "discriminator": ("discriminator", DiscriminatorSchema),
}
for _name, (_, _schema) in SCHEMAS.items():
    ConfigStore.instance().store(group="schema", name=_name, node=_schema)


def _describe(hint: Any) -> str:
    """What a field of type ``hint`` takes, in the words of the other checks' messages."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if args:  # Optional[X]
        return f"{_describe(args[0])}, or null"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(member.name for member in hint)
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[hint]


def _field_type(schema: type, path: list[str]) -> Any:
    hint: Any = schema
    for name in path:
        hint = typing.get_type_hints(hint)[name]
    return hint


def _subset(schema: type, values: dict[str, Any]) -> dict[str, Any]:
    """The part of ``values`` the schema declares (other keys are not the schema's)."""
    hints = typing.get_type_hints(schema)
    kept = {}
    for name, value in values.items():
        if name not in hints:
            continue
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = _subset(hint, value)
        kept[name] = value
    return kept


def check_schema(cfg: omegaconf.DictConfig, values: dict[str, Any]) -> None:
    """Merges the run's values of the bound's keys into their structured configs.

    Args:
        cfg: the composed configuration (to name the key a user sets).
        values: the same configuration as plain, resolved data (by top-level key).

    Raises:
        UsageError: ``KEY=VALUE: use WHAT`` for a value OmegaConf refuses.
    """
    from mbrl_bound_plugin.config.value_types import show, source_key

    for name, (key, schema) in SCHEMAS.items():
        if not isinstance(values.get(key), dict):
            continue
        node = ConfigStore.instance().load(f"schema/{name}.yaml").node
        try:
            omegaconf.OmegaConf.merge(node, _subset(schema, values[key]))
        except omegaconf.errors.ValidationError as e:
            path = str(e.full_key).split(".")
            value: Any = values[key]
            for part in path:
                value = value[part]
            wanted = _describe(_field_type(schema, path))
            where = source_key(cfg, ".".join([key, *path]))
            raise UsageError(f"{where}={show(value)}: use {wanted}") from e
