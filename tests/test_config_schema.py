"""The structured configs of the bound's own keys: in Hydra's ConfigStore, in step with YAML."""

from __future__ import annotations

import dataclasses

import pytest
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import mbrl_bound_conf_dir
from mbrl_bound_plugin import objective
from mbrl_bound_plugin.config import schema
from mbrl_bound_plugin.config.composition import compose
from mbrl_bound_plugin.errors import UsageError

BOUND = ["algorithm=bound", "overrides=mbpo_inv_pendulum_v5"]


def _fields(cls: type) -> set[str]:
    return {field.name for field in dataclasses.fields(cls)}


def _yaml(path: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(mbrl_bound_conf_dir() / path))


def test_each_key_of_the_bounds_yaml_has_a_type_in_the_schema():
    bound = _yaml("algorithm/bound.yaml")
    assert set(bound["model_wrapper"]) == _fields(schema.ModelWrapperSchema)
    assert set(bound["bound_agent"]) == _fields(schema.BoundAgentSchema)
    own = _fields(schema.BoundAlgorithmSchema)
    assert own - {"model_wrapper", "bound_agent"} <= set(bound)
    assert set(_yaml("discriminator/mlp.yaml")) == _fields(schema.DiscriminatorSchema)


def test_the_schemas_are_in_hydras_config_store():
    for name in ("bound", "discriminator"):
        stored = ConfigStore.instance().load(f"schema/{name}.yaml")
        assert OmegaConf.get_type(stored.node) is schema.SCHEMAS[name][1]


def test_the_choices_are_the_objectives():
    assert [m.name for m in schema.BoundMode] == list(objective.AUGMENTED_REWARD_MODES)
    assert [m.name for m in schema.RatioScale] == list(objective.RATIO_SCALES)


@pytest.mark.parametrize(
    "override, message",
    [
        ("algorithm.bound_agent.mode=other", "mode='other': use one of scaled, bound"),
        ("algorithm.bound_agent.scale=std", "use one of none, reward_std, reward_rms"),
        ("algorithm.model_wrapper.bound_batch_size=abc", "use an integer, or null"),
        ("algorithm.bound_agent.reward_floor=abc", "reward_floor='abc': use a number, or null"),
        ("algorithm.bound_agent.policy_ratio=maybe", "policy_ratio='maybe': use true or false"),
        ("discriminator.hid_size=abc", "discriminator.hid_size='abc': use an integer"),
    ],
)
def test_a_value_the_schema_refuses_is_one_line(override, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")) as info:
        compose([*BOUND, override])
    assert "\n" not in str(info.value)


def test_the_config_a_run_gets_keeps_plain_strings():
    cfg = compose(
        [*BOUND, "algorithm.bound_agent.mode=bound", "algorithm.bound_agent.reward_floor=-1"]
    )
    assert cfg.algorithm.bound_agent.mode == "bound"
    assert type(cfg.algorithm.bound_agent.mode) is str  # (the schema checks; it does not convert)
