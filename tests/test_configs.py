"""Every shipped config composes; the search-path plugin serves any Hydra app."""

from __future__ import annotations

import inspect
import math
import pathlib

import mbrl.util.common
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import mbrl_bound_plugin
from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import (
    mbrl_bound_conf_dir,
    mbrl_examples_conf_dir,
)
from mbrl_bound_plugin.config.composition import (
    REQUIRED_OVERRIDES,
    check_config,
    complete_config,
    group_options,
)
from mbrl_bound_plugin.errors import UsageError
from mbrl_bound_plugin.models.discriminator import Discriminator
from mbrl_bound_plugin.planning.sac_agent import BoundSACAgent

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
    assert set(bound) - set(mbpo) == {"model_wrapper", "bound_agent", "disc_max_rows", "optimism"}


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


def test_required_overrides_cover_every_shipped_algorithm():
    """check_config knows every algorithm a user can choose (its name is its file's)."""
    assert set(REQUIRED_OVERRIDES) == set(group_options("algorithm"))
    for name in group_options("algorithm"):  # (check_config goes by algorithm.name)
        assert _compose(CONF, [f"algorithm={name}"]).algorithm.name == name


@pytest.mark.parametrize("key", REQUIRED_OVERRIDES["bound"])
def test_every_key_bound_reads_is_checked(key):
    cfg = _compose(CONF, ["algorithm=bound", "overrides=mbpo_inv_pendulum", f"~overrides.{key}"])
    with pytest.raises(UsageError, match=f"lacks key '{key}'"):
        check_config(cfg, {"overrides": "mbpo_inv_pendulum"})


def test_bound_settings_reach_the_objects_the_run_builds(tmp_path: pathlib.Path):
    """Each of the bound's config keys, set away from its default, is what the run uses."""
    settings = {
        "algorithm.model_wrapper.beta": 0.37,
        "algorithm.bound_agent.lam": 0.21,
        "algorithm.bound_agent.clip": 3.5,
        "algorithm.bound_agent.scale": "reward_rms",
        "algorithm.bound_agent.warmup_epochs": 4,
        "algorithm.bound_agent.ratio_centering": False,
        "overrides.sac_gamma": 0.95,
        "discriminator.batch_size": 17,
        "discriminator.num_updates": 7,
        "discriminator.holdout_ratio": 0.25,
        "discriminator.noise_scale": 0.3,
        "discriminator.grad_penalty": 0.5,
        "discriminator.patience": 2,
        "discriminator.eval_every": 3,
        "discriminator.lr": 0.002,
        "discriminator.weight_decay": 0.001,
    }
    cfg = mbrl_bound_plugin.compose(
        # (method none: the model step of beta, whose weight is checked here)
        ["algorithm=bound", "overrides=mbpo_inv_pendulum_v5", "device=cpu"]
        + ["algorithm.optimism.method=none"]
        + [f"{k}={v}" for k, v in settings.items()]
    )
    env, term_fn, _ = mbrl_bound_plugin.make_env(cfg)
    test_env, *_ = mbrl_bound_plugin.make_env(cfg)
    run = mbrl_bound_plugin.BoundRun(env, test_env, term_fn, cfg, str(tmp_path), silent=True)
    agent, disc = run.agent, run.discriminator
    got = {
        "algorithm.model_wrapper.beta": run.dynamics_model.beta,
        "algorithm.bound_agent.lam": agent.lam,
        "algorithm.bound_agent.clip": agent.clip,
        "algorithm.bound_agent.scale": agent.scale,
        "algorithm.bound_agent.warmup_epochs": agent.warmup_epochs,
        "algorithm.bound_agent.ratio_centering": agent.ratio_centering,
        "overrides.sac_gamma": agent.gamma,
        "discriminator.batch_size": disc.batch_size,
        "discriminator.num_updates": disc.num_updates,
        "discriminator.holdout_ratio": disc.holdout_ratio,
        "discriminator.noise_scale": disc.noise_scale,
        "discriminator.grad_penalty": disc.grad_penalty,
        "discriminator.patience": disc.patience,
        "discriminator.eval_every": disc.eval_every,
        "discriminator.lr": disc.optimizer.param_groups[0]["lr"],
        "discriminator.weight_decay": disc.optimizer.param_groups[0]["weight_decay"],
    }
    assert got == settings
    # the agent's discount is SAC's own (one gamma for the bound and the critic)
    assert run.agent.sac_agent.gamma == agent.gamma
    # the model wrapper keeps mbrl's options from the dynamics-model config
    assert run.dynamics_model.num_elites == cfg.overrides.num_elites
    assert run.dynamics_model.target_is_delta is cfg.algorithm.target_is_delta


def test_bound_defaults_are_the_classes_defaults():
    """The shipped bound.yaml and discriminator/mlp.yaml say what the code does by default."""
    cfg = _compose(CONF, ["algorithm=bound", "overrides=mbpo_inv_pendulum"])
    for node, cls, skip in (
        (cfg.algorithm.bound_agent, BoundSACAgent, {"gamma"}),
        (cfg.discriminator, Discriminator, {"device"}),
    ):
        params = inspect.signature(cls).parameters
        for key, value in OmegaConf.to_container(node, resolve=False).items():
            if key == "_target_" or key in skip or value == "???":  # (set by the run)
                continue
            assert key in params, f"{cls.__name__} has no argument {key}"
            assert value == params[key].default, f"{cls.__name__}({key}): {value!r}"


# --- the replay buffer holds every transition of a run (algorithm.dataset_size) ---


def _capacity(cfg) -> int:
    """The capacity of the replay buffer mbrl's create_replay_buffer builds from ``cfg``."""
    return mbrl.util.common.create_replay_buffer(cfg, (4,), (1,)).capacity


@pytest.mark.parametrize("algorithm", ["mbpo", "bound", "mbpo_resumable"])
@pytest.mark.parametrize(
    "steps, epoch, explore, capacity",
    [
        (1000, 250, 300, 300 + 1000),  # exploration, then 4 epochs
        (1100, 250, 300, 300 + 1250),  # whole epochs: 5 of them
        (20000, 1000, 5000, 5000 + 20000),  # mbrl's own mbpo_inv_pendulum (its default size: 20000)
    ],
)
def test_mbpo_style_buffer_holds_exploration_and_every_epoch(
    algorithm, steps, epoch, explore, capacity
):
    cfg = mbrl_bound_plugin.compose(
        [
            f"algorithm={algorithm}",
            "overrides=mbpo_inv_pendulum",
            f"overrides.num_steps={steps}",
            f"overrides.epoch_length={epoch}",
            f"algorithm.initial_exploration_steps={explore}",
        ]
    )
    assert cfg.algorithm.dataset_size == capacity
    assert _capacity(cfg) == capacity


@pytest.mark.parametrize(
    "overrides, capacity",
    [
        # exploration (trial_length), num_steps, and the last episode's overshoot: up to
        # the time limit - 1 (cartpole_continuous: mbrl's TimeLimit of trial_length=200)
        (["overrides=pets_cartpole"], 200 + 5000 + 199),
        (["overrides=pets_halfcheetah_v5", "overrides.num_steps=50"], 1000 + 50 + 999),
        (["overrides=pets_mountain_car"], 999 + 20000 + 998),
    ],
)
def test_pets_buffer_holds_exploration_steps_and_the_last_episode(overrides, capacity):
    cfg = mbrl_bound_plugin.compose(["algorithm=pets", *overrides])
    assert _capacity(cfg) == capacity


@pytest.mark.parametrize(
    "algorithm, overrides",
    [
        ("mbpo", "mbpo_inv_pendulum_v5"),
        ("bound", "mbpo_inv_pendulum_v5"),
        ("pets", "pets_cartpole"),
    ],
)
def test_a_dataset_size_the_user_sets_wins(algorithm, overrides):
    base = [f"algorithm={algorithm}", f"overrides={overrides}"]
    assert _capacity(mbrl_bound_plugin.compose([*base, "+algorithm.dataset_size=1234"])) == 1234
    # 0 and null are mbrl's "unset": the run's size then
    default = _capacity(mbrl_bound_plugin.compose(base))
    assert _capacity(mbrl_bound_plugin.compose([*base, "+algorithm.dataset_size=0"])) == default
    assert _capacity(mbrl_bound_plugin.compose([*base, "+algorithm.dataset_size=null"])) == default


def test_planet_keeps_its_own_dataset_size():
    cfg = _compose(CONF, ["algorithm=planet"])
    assert complete_config(cfg) == {}
    assert cfg.algorithm.dataset_size == 1000000


def test_complete_config_fills_in_only_what_is_unset():
    cfg = _compose(CONF, ["algorithm=mbpo", "overrides=mbpo_inv_pendulum_v5"])
    assert "dataset_size" not in cfg.algorithm  # (mbrl's create_replay_buffer: num_steps)
    filled = complete_config(cfg)
    assert filled == {"algorithm.dataset_size": cfg.algorithm.dataset_size}
    assert cfg.algorithm.dataset_size > cfg.overrides.num_steps
    assert complete_config(cfg) == {}  # (once filled in, kept)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["mbpo", "pets"])
def test_no_transition_of_a_run_is_overwritten(algorithm, tmp_path, monkeypatch, one_torch_thread):
    """mbrl's own train functions, on the composed config: the buffer never wraps around."""
    import mbrl.algorithms.mbpo
    import mbrl.algorithms.pets
    from conftest import TINY_MBPO, TINY_PETS

    made, added = [], []
    create = mbrl.util.common.create_replay_buffer

    def spy(*args, **kwargs):
        buffer = create(*args, **kwargs)
        add = buffer.add

        def counted_add(*args, **kwargs):
            added.append(1)
            return add(*args, **kwargs)

        buffer.add = counted_add
        made.append(buffer)
        return buffer

    monkeypatch.setattr(mbrl.util.common, "create_replay_buffer", spy)
    if algorithm == "mbpo":  # 100 exploration steps, then 2 epochs of 100 (150 rounded up)
        tiny = [o for o in TINY_MBPO if "num_steps" not in o] + ["overrides.num_steps=150"]
        overrides = "mbpo_inv_pendulum_v5"
    else:  # 60 exploration steps, then episodes until 120 steps
        tiny, overrides = TINY_PETS, "pets_inv_pendulum_v5"
    cfg = mbrl_bound_plugin.compose([f"algorithm={algorithm}", f"overrides={overrides}", *tiny])
    cfg.device = "cpu"
    env, term_fn, reward_fn = mbrl_bound_plugin.make_env(cfg)
    work_dir = str(tmp_path)
    if algorithm == "mbpo":
        test_env, *_ = mbrl_bound_plugin.make_env(cfg)
        mbrl.algorithms.mbpo.train(env, test_env, term_fn, cfg, silent=True, work_dir=work_dir)
    else:
        mbrl.algorithms.pets.train(env, term_fn, reward_fn, cfg, silent=True, work_dir=work_dir)
    (buffer,) = made
    assert buffer.num_stored == len(added) <= buffer.capacity  # nothing overwritten
    if algorithm == "mbpo":
        assert len(added) == buffer.capacity == 100 + 200
    else:
        assert len(added) >= 60 + 120
