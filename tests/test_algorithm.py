"""algorithm=bound end to end, and its numerical guard."""

from __future__ import annotations

import math
import pathlib

import gymnasium as gym
import numpy as np
import pytest
from conftest import TINY_BOUND
from hydra import compose, initialize_config_dir

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import mbrl_bound_conf_dir
from mbrl_bound_plugin.algorithm import train
from mbrl_bound_plugin.envs import make_env
from mbrl_bound_plugin.errors import NumericalError, UsageError


@pytest.mark.slow
def test_bound_trains_through_the_command_and_logs_its_diagnostics(run_cli, results):
    proc = run_cli("algorithm=bound", "overrides=mbpo_inv_pendulum_v5", *TINY_BOUND)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = results()
    assert [int(float(r["epoch"])) for r in rows] == [0, 1]
    for row in rows:
        for column in ("env_step", "episode_reward", "rollout_length"):
            assert math.isfinite(float(row[column]))
        accuracy = float(row["disc_accuracy"])
        assert 0.0 <= accuracy <= 1.0
        assert math.isfinite(float(row["kl_estimate"]))
        assert math.isfinite(float(row["bound_reward"]))
    model_rows = results("model_train")
    assert {"model_loss", "model_nll", "bound_term"} <= set(model_rows[0])
    # the first model training has no discriminator yet (bound term 0); the second has
    bound_terms = [float(r["bound_term"]) for r in model_rows]
    assert bound_terms[0] == 0.0 and any(b != 0.0 for b in bound_terms)
    assert all(math.isfinite(b) for b in bound_terms)


class _RewardAfter(gym.Wrapper):
    """Returns ``reward`` instead of the env's from the given step on."""

    def __init__(self, env: gym.Env, step: int, reward: float):
        super().__init__(env)
        self.from_step, self.steps, self.reward = step, 0, reward

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return (
            obs,
            (self.reward if self.steps > self.from_step else reward),
            terminated,
            truncated,
            info,
        )


def _tiny_bound_cfg(*extra: str):
    with initialize_config_dir(version_base="1.1", config_dir=str(mbrl_bound_conf_dir())):
        return compose(
            config_name="main",
            overrides=["algorithm=bound", "overrides=mbpo_inv_pendulum_v5", "device=cpu"]
            + [o.lstrip("+") for o in TINY_BOUND if "num_epochs_train_model" not in o]
            + ["+overrides.num_epochs_train_model=2", *extra],
        )


def test_nan_reward_stops_the_run_naming_component_and_step(tmp_path: pathlib.Path):
    cfg = _tiny_bound_cfg()
    env, term_fn, _ = make_env(cfg)
    test_env, *_ = make_env(cfg)
    # 100 exploration steps, then 30 steps of training before the reward turns NaN
    with pytest.raises(NumericalError, match=r"environment reward is nan at environment step 30"):
        train(
            _RewardAfter(env, 130, math.nan),
            test_env,
            term_fn,
            cfg,
            silent=True,
            work_dir=str(tmp_path),
        )
    # what mbrl keeps was saved before stopping
    assert (tmp_path / "replay_buffer.npz").is_file()
    assert (tmp_path / "model.pth").is_file()
    saved = np.load(tmp_path / "replay_buffer.npz")
    assert len(saved["obs"]) == 131


def test_a_real_reward_below_the_floor_mid_run_is_a_usage_error(tmp_path: pathlib.Path):
    # InvertedPendulum's reward is 0 or 1 during exploration, above the floor -1; then -2
    cfg = _tiny_bound_cfg(
        "algorithm.bound_agent.mode=bound", "algorithm.bound_agent.reward_floor=-1"
    )
    env, term_fn, _ = make_env(cfg)
    test_env, *_ = make_env(cfg)
    with pytest.raises(UsageError, match=r"algorithm.bound_agent: .*environment step 20"):
        train(
            _RewardAfter(env, 120, -2.0),
            test_env,
            term_fn,
            cfg,
            silent=True,
            work_dir=str(tmp_path),
        )
