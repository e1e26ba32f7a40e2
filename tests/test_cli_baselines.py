"""mbrl's own MBPO and PETS, trained through ``mbrl-bound`` on tiny budgets."""

from __future__ import annotations

import math

import pytest
from conftest import TINY_MBPO, TINY_PETS

pytestmark = pytest.mark.slow


def _assert_results(rows: list[dict[str, str]], columns: set[str], num_steps: int) -> None:
    assert rows, "results.csv has no rows"
    assert columns <= set(rows[0]), f"missing columns: {columns - set(rows[0])}"
    steps = [float(r["env_step"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] >= num_steps * 0.5 - 1
    assert all(math.isfinite(float(r["episode_reward"])) for r in rows)


@pytest.mark.parametrize(
    "overrides",
    ["mbpo_inv_pendulum", "mbpo_hopper", "mbpo_halfcheetah_v5", "mbpo_mountain_car"],
)
def test_mbpo_trains(run_cli, results, overrides):
    proc = run_cli("algorithm=mbpo", f"overrides={overrides}", *TINY_MBPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = results()
    _assert_results(rows, {"env_step", "episode_reward", "epoch", "rollout_length"}, 200)
    assert [int(float(r["epoch"])) for r in rows] == [0, 1]
    assert "results in" in proc.stdout


@pytest.mark.parametrize("overrides", ["pets_cartpole", "pets_inv_pendulum", "pets_mountain_car"])
def test_pets_trains(run_cli, results, overrides):
    proc = run_cli("algorithm=pets", f"overrides={overrides}", *TINY_PETS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_results(results(), {"env_step", "episode_reward"}, 120)


def test_pets_halfcheetah_v5_learned_reward(run_cli, results):
    proc = run_cli(
        "algorithm=pets", "overrides=pets_halfcheetah_v5", *TINY_PETS, "overrides.num_steps=50"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = results()
    # HalfCheetah never terminates: one 1000-step episode
    assert [float(r["env_step"]) for r in rows] == [1000.0]


def test_user_env_through_env_cfg(run_cli, results):
    """A gymnasium env class given by `overrides.env_cfg` (mbrl's EnvHandler path)."""
    target = "gymnasium.envs.classic_control.continuous_mountain_car.Continuous_MountainCarEnv"
    proc = run_cli(
        "algorithm=mbpo",
        "overrides=mbpo_mountain_car",
        *TINY_MBPO,
        f"+overrides.env_cfg._target_={target}",
        "+overrides.trial_length=100",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = results()
    _assert_results(rows, {"env_step", "episode_reward"}, 200)
