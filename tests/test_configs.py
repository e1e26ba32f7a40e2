"""Every shipped config composes; the search-path plugin serves any Hydra app."""

from __future__ import annotations

import math
import pathlib

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import (
    mbrl_bound_conf_dir,
    mbrl_examples_conf_dir,
)
from mbrl_bound_plugin.config import REQUIRED_OVERRIDES, check_config, group_options

CONF = mbrl_bound_conf_dir()
SHIPPED_OVERRIDES = sorted(p.stem for p in (CONF / "overrides").glob("*.yaml"))
MBPO_STYLE = [name for name in group_options("overrides") if name.startswith("mbpo_")]
PETS_STYLE = [
    name
    for name in group_options("overrides")
    if name.startswith("pets_") and "icem" not in name and "mppi" not in name
]


def _compose(config_dir: pathlib.Path, overrides: list[str]):
    with initialize_config_dir(version_base="1.1", config_dir=str(config_dir)):
        return compose(config_name="main", overrides=overrides)


def test_conf_dir_holds_main_and_groups():
    assert (CONF / "main.yaml").is_file()
    for group in ("algorithm", "action_optimizer", "discriminator", "overrides"):
        assert list((CONF / group).glob("*.yaml")), group


@pytest.mark.parametrize("algorithm", ["mbpo", "bound"])
@pytest.mark.parametrize("overrides", MBPO_STYLE)
def test_mbpo_style_overrides_compose(algorithm, overrides):
    cfg = _compose(CONF, [f"algorithm={algorithm}", f"overrides={overrides}"])
    check_config(cfg)  # every key the algorithm reads is there and resolves
    assert cfg.algorithm.name == algorithm


@pytest.mark.parametrize("overrides", PETS_STYLE)
def test_pets_style_overrides_compose(overrides):
    cfg = _compose(CONF, ["algorithm=pets", f"overrides={overrides}"])
    check_config(cfg)
    OmegaConf.to_container(cfg.algorithm.agent.optimizer_cfg, resolve=True)


def test_bound_keeps_every_mbpo_key_and_adds_only_its_own():
    mbpo = _compose(CONF, ["algorithm=mbpo", "overrides=mbpo_inv_pendulum"]).algorithm
    bound = _compose(CONF, ["algorithm=bound", "overrides=mbpo_inv_pendulum"]).algorithm
    assert set(mbpo) <= set(bound)
    as_dict = OmegaConf.to_container  # (unresolved: interpolations compare as text)
    assert {k: v for k, v in as_dict(bound).items() if k in mbpo and k != "name"} == {
        k: v for k, v in as_dict(mbpo).items() if k != "name"
    }
    assert set(bound) - set(mbpo) == {"model_wrapper", "bound_agent", "disc_max_rows"}


@pytest.mark.parametrize("name", SHIPPED_OVERRIDES)
def test_shipped_learning_rates_below_one(name):
    cfg = _compose(CONF, [f"overrides={name}"])
    rates = {k: v for k, v in cfg.overrides.items() if k.endswith("_lr")}
    assert rates, f"{name} sets no learning rate"
    for key, value in rates.items():
        assert isinstance(value, float) and 0 < value < 1, f"{name}.{key} = {value!r}"


def test_mbrl_octal_learning_rate_is_why_pets_inv_pendulum_is_shipped():
    """mbrl's own file reads as 99 (octal 00143); ours shadows it."""
    mbrl_file = mbrl_examples_conf_dir() / "overrides" / "pets_inv_pendulum.yaml"
    assert yaml.safe_load(mbrl_file.read_text())["model_lr"] == 99
    assert math.isclose(_compose(CONF, []).overrides.model_lr, 7.5e-4)  # default task
    cfg = _compose(CONF, ["overrides=pets_inv_pendulum"])
    assert math.isclose(cfg.overrides.model_lr, 0.00143)


@pytest.mark.parametrize(
    "overrides",
    [
        ["algorithm=mbpo", "overrides=mbpo_inv_pendulum"],
        ["algorithm=bound", "overrides=mbpo_inv_pendulum"],
        ["algorithm=pets", "overrides=pets_cartpole"],
    ],
)
def test_plain_hydra_compose_of_mbrl_main_yaml(overrides):
    """mbrl's own main.yaml (its installed examples/conf) with the plugin installed."""
    cfg = _compose(mbrl_examples_conf_dir(), overrides)
    # the action_optimizer group, missing from mbrl's wheel, comes from this package
    assert cfg.action_optimizer._target_ == "mbrl.planning.CEMOptimizer"
    assert cfg.algorithm.name == overrides[0].split("=")[1]
    if cfg.algorithm.name == "bound":
        assert cfg.discriminator._target_.endswith("Discriminator")


def test_required_overrides_cover_every_algorithm():
    assert set(REQUIRED_OVERRIDES) == {"mbpo", "pets", "planet", "bound"}
