"""Environment shims: termination function, action space, cart-pole reset, factory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mbrl_bound_plugin.env.factory import (
    CartPoleContinuous,
    box_space,
    make_env,
    mountain_car_continuous,
)
from mbrl_bound_plugin.errors import UsageError


def test_mountain_car_termination_at_the_flag_only():
    next_obs = torch.tensor([[0.45, 0.0], [0.5, 0.01], [0.44, 0.07], [0.46, -0.01], [-1.2, 0.0]])
    done = mountain_car_continuous(torch.zeros(5, 1), next_obs)
    assert done.shape == (5, 1) and done.dtype == torch.bool
    assert done[:, 0].tolist() == [True, True, False, False, False]


def test_mountain_car_termination_agrees_with_gymnasium():
    import gymnasium as gym

    env = gym.make("MountainCarContinuous-v0")
    env.reset(seed=0)
    base = env.unwrapped
    for position, velocity in [(0.449, 0.05), (0.44, 0.02), (0.2, 0.07)]:
        base.state = np.array([position, velocity])
        obs, _, terminated, _, _ = env.step(np.array([1.0], dtype=np.float32))
        ours = mountain_car_continuous(torch.zeros(1, 1), torch.tensor(obs[None]))
        assert bool(ours[0, 0]) == terminated, (position, velocity)


def test_box_space_from_lists():
    box = box_space([-1.0, -2.0], [1.0, 2.0], [2])
    assert box.shape == (2,) and box.low.dtype == np.float32
    assert box.high.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="shape"):
        box_space([-1.0], [1.0], [2])


def test_cartpole_accepts_gymnasium_reset_options():
    env = CartPoleContinuous()
    obs, _ = env.reset(seed=3, options={"anything": 1})
    assert obs.shape == (4,)


def _cfg(**overrides):
    return OmegaConf.create({"seed": 0, "overrides": {"learned_rewards": True, **overrides}})


def test_make_env_with_dotted_term_fn():
    env, term_fn, reward_fn = make_env(
        _cfg(
            env="gym___MountainCarContinuous-v0",
            term_fn=f"{mountain_car_continuous.__module__}.mountain_car_continuous",
        )
    )
    assert term_fn is mountain_car_continuous and reward_fn is None
    assert env.observation_space.shape == (2,)


def test_make_env_cartpole_continuous_resets_under_time_limit():
    env, term_fn, reward_fn = make_env(_cfg(env="cartpole_continuous", learned_rewards=False))
    obs, _ = env.reset()
    assert obs.shape == (4,) and reward_fn is not None


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"env": "gym___Nope-v3", "term_fn": "no_termination"}, "unknown gymnasium env id"),
        ({"term_fn": "no_termination"}, "need `env`"),
        ({"env": "gym___Pendulum-v1", "term_fn": "not.a.function"}, "not an importable"),
    ],
)
def test_make_env_refuses(overrides, fragment):
    with pytest.raises(UsageError, match=fragment):
        make_env(_cfg(**overrides))
