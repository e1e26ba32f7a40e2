"""The Python API: compose, make_env, train (with device auto), BoundRun, the quickstart."""

from __future__ import annotations

import csv
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import omegaconf
import pytest
import torch
from conftest import TINY_BOUND
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

import mbrl_bound_plugin as mbb
from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import mbrl_bound_conf_dir
from mbrl_bound_plugin.errors import UsageError

REPO = pathlib.Path(__file__).resolve().parents[1]
PENDULUM = ["algorithm=bound", "overrides=mbpo_inv_pendulum_v5"]


def _containers_equal_except_device(a: omegaconf.DictConfig, b: omegaconf.DictConfig) -> None:
    left = omegaconf.OmegaConf.to_container(a, resolve=False)
    right = omegaconf.OmegaConf.to_container(b, resolve=False)
    left.pop("device"), right.pop("device")
    assert left == right


def test_compose_is_what_the_command_runs(run_cli, tmp_path: pathlib.Path):
    args = [*PENDULUM, *TINY_BOUND, "seed=3"]
    proc = run_cli(*args, "hydra.run.dir=" + str(tmp_path / "run"), root=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Hydra saves the config it composed (before the run resolves the device)
    saved = omegaconf.OmegaConf.load(tmp_path / "run" / ".hydra" / "config.yaml")
    cfg = mbb.compose([*args, "hydra.run.dir=" + str(tmp_path / "run")])
    _containers_equal_except_device(cfg, saved)
    assert saved.device == "auto"
    assert cfg.device == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert "hydra" not in cfg
    assert cfg.seed == 3 and cfg.algorithm.name == "bound"


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["algorithm=nope"], "unknown algorithm 'nope'"),
        (["algorithm=bound,mbpo"], "is a sweep"),
        (["algorithm=choice(bound,mbpo)"], "is a sweep"),
        (["algorithm=mbpo", "overrides=pets_cartpole"], "overrides=pets_cartpole lacks key"),
        (["overrides.no_such_key=1"], "Could not override 'overrides.no_such_key'"),
        (["algorithm=bound", "overrides=mbpo_inv_pendulum_v5", "device=tpu"], "device"),
    ],
)
def test_compose_refuses_what_the_command_refuses(overrides, fragment):
    with pytest.raises(UsageError, match=fragment):
        mbb.compose(overrides)


def test_compose_takes_hydra_syntax_and_works_inside_another_hydra_context():
    with initialize_config_dir(version_base="1.1", config_dir=str(mbrl_bound_conf_dir())):
        outer = hydra_compose(config_name="main", overrides=["seed=7"])
        cfg = mbb.compose(["algorithm='bound'", "overrides=mbpo_inv_pendulum_v5", "+x='a b'"])
        assert cfg.algorithm.name == "bound" and cfg.x == "a b"
        # the outer context still composes after compose() returned
        again = hydra_compose(config_name="main", overrides=["seed=8"])
    assert outer.seed == 7 and again.seed == 8


def test_make_env_returns_env_termination_and_reward_functions():
    cfg = mbb.compose(PENDULUM)
    env, term_fn, reward_fn = mbb.make_env(cfg)
    assert env.observation_space.shape == (4,)
    assert reward_fn is None  # MBPO's overrides learn the reward
    done = term_fn(torch.zeros(2, 1), torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]))
    assert done[:, 0].tolist() == [False, True]  # the pole has fallen past 0.2 rad


def _tiny_cfg(*extra: str) -> omegaconf.DictConfig:
    return mbb.compose([*PENDULUM, *TINY_BOUND, *extra])


@pytest.mark.slow
def test_train_accepts_device_auto(tmp_path: pathlib.Path, one_torch_thread):
    cfg = _tiny_cfg("overrides.num_steps=100")
    cfg.device = "auto"  # e.g. a config written by hand, never passed through compose
    env, term_fn, _ = mbb.make_env(cfg)
    test_env, *_ = mbb.make_env(cfg)
    best = mbb.train(env, test_env, term_fn, cfg, silent=True, work_dir=str(tmp_path / "new"))
    assert math.isfinite(best)
    assert cfg.device in ("cpu", "cuda:0")
    with open(tmp_path / "new" / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 1


@pytest.mark.slow
def test_a_run_restored_from_its_state_dict_has_the_same_state(one_torch_thread, tmp_path):
    cfg = _tiny_cfg("overrides.num_steps=100")
    env, term_fn, _ = mbb.make_env(cfg)
    test_env, *_ = mbb.make_env(cfg)
    run = mbb.BoundRun(env, test_env, term_fn, cfg, str(tmp_path / "a"), silent=True)
    run.explore()
    run.env_steps, run.epoch, run.updates_made = 17, 2, 5
    state = run.state_dict()

    env2, term_fn2, _ = mbb.make_env(cfg)
    test_env2, *_ = mbb.make_env(cfg)
    fresh = mbb.BoundRun(env2, test_env2, term_fn2, cfg, str(tmp_path / "b"), silent=True)
    assert fresh.replay_buffer.num_stored == 0
    fresh.load_state_dict(state)
    assert (fresh.env_steps, fresh.epoch, fresh.updates_made) == (17, 2, 5)
    np.testing.assert_array_equal(
        fresh.replay_buffer.get_all().obs, run.replay_buffer.get_all().obs
    )
    for name, value in run.dynamics_model.state_dict().items():
        assert torch.equal(fresh.dynamics_model.state_dict()[name], value), name
    for name, value in run.agent.sac_agent.policy.state_dict().items():
        assert torch.equal(fresh.agent.sac_agent.policy.state_dict()[name], value), name
    # the two runs now draw the same random numbers
    assert fresh.rng.random() == run.rng.random()


@pytest.mark.slow
def test_the_quickstart_example_runs_as_a_user_would(tmp_path: pathlib.Path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py"), str(tmp_path / "qs")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "qs" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["epoch"])) for r in rows] == [0, 1, 2, 3]
    assert "best evaluation return" in proc.stdout


@pytest.mark.slow
def test_train_from_python_is_reproducible_by_seed(tmp_path: pathlib.Path, one_torch_thread):
    """train seeds the global generators itself, as the command does before calling it."""

    def results_of(name: str, seed: int) -> bytes:
        cfg = _tiny_cfg("overrides.num_steps=100", f"seed={seed}")
        env, term_fn, _ = mbb.make_env(cfg)
        test_env, *_ = mbb.make_env(cfg)
        torch.rand(5), np.random.rand(3)  # a caller's own draws must not matter
        mbb.train(env, test_env, term_fn, cfg, silent=True, work_dir=str(tmp_path / name))
        return (tmp_path / name / "results.csv").read_bytes()

    first = results_of("a", 0)
    assert results_of("b", 0) == first
    assert results_of("c", 1) != first
