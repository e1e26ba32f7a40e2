"""mbrl's own MBPO and PETS, trained through ``mbrl-bound`` on tiny budgets."""

from __future__ import annotations

import math

import pytest
from conftest import MBPO_TASKS, PETS_TASKS, TINY_MBPO

pytestmark = pytest.mark.slow


def _assert_results(rows: list[dict[str, str]], columns: set[str], num_steps: int) -> None:
    assert rows, "results.csv has no rows"
    assert columns <= set(rows[0]), f"missing columns: {columns - set(rows[0])}"
    steps = [float(r["env_step"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] >= num_steps * 0.5 - 1
    assert all(math.isfinite(float(r["episode_reward"])) for r in rows)


@pytest.mark.parametrize("overrides", MBPO_TASKS)
def test_mbpo_trains(mbpo_sweep, overrides):
    rows = mbpo_sweep.rows(overrides)
    _assert_results(rows, {"env_step", "episode_reward", "epoch", "rollout_length"}, 200)
    assert [int(float(r["epoch"])) for r in rows] == [0, 1]


def test_each_job_says_where_its_results_are(mbpo_sweep, pets_sweep):
    for sweep in (mbpo_sweep, pets_sweep):
        assert sweep.proc.returncode == 0, sweep.proc.stderr[-3000:]
        assert sweep.proc.stdout.count("results in") == len(sweep.results)


@pytest.mark.parametrize("overrides", [t for t in PETS_TASKS if t != "pets_halfcheetah_v5"])
def test_pets_trains(pets_sweep, overrides):
    _assert_results(pets_sweep.rows(overrides), {"env_step", "episode_reward"}, 120)


def test_pets_halfcheetah_v5_learned_reward(pets_sweep):
    # HalfCheetah never terminates: one 1000-step episode
    rows = pets_sweep.rows("pets_halfcheetah_v5")
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
