"""``algorithm=mbpo_resumable``: this package's loop with both bound terms off is mbrl's MBPO.

The proof is a comparison with mbrl's own ``mbrl.algorithms.mbpo.train`` on the same
seed and settings: the CSV logs must be equal byte for byte. Then what the loop adds:
a run killed mid-epoch resumes to the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import mbrl.algorithms.mbpo as mbpo
import numpy as np
import pytest
import torch
from conftest import TINY_MBPO, one_thread_env

from mbrl_bound_plugin import compose
from mbrl_bound_plugin.algorithms.bound import train
from mbrl_bound_plugin.env.factory import make_env
from mbrl_bound_plugin.planning.sac_agent import BoundSACAgent
from mbrl_bound_plugin.util.checkpoint import list_checkpoints

pytestmark = pytest.mark.slow

SETTINGS = [
    "overrides=mbpo_inv_pendulum_v5",
    "device=cpu",
    "log_frequency_agent=50",
    *[o for o in TINY_MBPO if "num_steps" not in o],
    "overrides.num_steps=300",
    "+algorithm.dataset_size=1000",
    "algorithm.real_data_ratio=0.1",  # (SAC batches from both buffers)
]
LOGS = ("results.csv", "model_train.csv", "train.csv")
DRIVER = pathlib.Path(__file__).with_name("crash_driver.py")


def _train_in_process(algorithm: str, work_dir: pathlib.Path, extra: tuple[str, ...] = ()):
    """What ``mbrl-bound`` does for one run, with mbrl's or this package's ``train``."""
    cfg = compose([f"algorithm={algorithm}", *SETTINGS, *extra])
    env, term_fn, _ = make_env(cfg)
    test_env, *_ = make_env(cfg)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    work_dir.mkdir()
    trainer = mbpo.train if algorithm == "mbpo" else train
    return trainer(env, test_env, term_fn, cfg, work_dir=str(work_dir))


@pytest.fixture(scope="module")
def mbrl_run(tmp_path_factory) -> pathlib.Path:
    work_dir = tmp_path_factory.mktemp("mbrl") / "run"
    _train_in_process("mbpo", work_dir)
    return work_dir


NO_TILT = [  # the model's budgeted optimism with nothing to spend: mbrl's samples
    (),
    ("algorithm.optimism.kl_budget=0.5",),  # (method none)
    ("algorithm.optimism.method=mean_shift",),  # (kl_budget 0)
    ("algorithm.optimism.method=resample", "algorithm.optimism.kl_budget=0.0"),
]


@pytest.mark.parametrize("extra", NO_TILT)
def test_mbpo_resumable_writes_the_same_logs_as_mbrls_mbpo(tmp_path, mbrl_run, extra):
    ours = tmp_path / "ours"
    _train_in_process("mbpo_resumable", ours, extra)
    assert (mbrl_run / "results.csv").read_text().count("\n") == 4  # header + 3 epochs
    for name in LOGS:
        assert (ours / name).read_bytes() == (mbrl_run / name).read_bytes(), name
    assert list_checkpoints(ours / "checkpoints")  # and it checkpointed on the way


def test_with_a_bound_term_on_the_logs_differ(tmp_path, mbrl_run):
    """The comparison above can fail: the same run with the model term on is not MBPO."""
    ours = tmp_path / "ours"
    _train_in_process("mbpo_resumable", ours, ("algorithm.model_wrapper.beta=0.1",))
    assert (ours / "results.csv").read_bytes() != (mbrl_run / "results.csv").read_bytes()


@pytest.mark.parametrize("method", ["mean_shift", "resample"])
def test_with_a_kl_budget_the_rollouts_differ_and_the_tilt_is_logged(tmp_path, mbrl_run, method):
    """The comparison above can fail for the optimism too: a budget changes SAC's data."""
    ours = tmp_path / "ours"
    extra = (f"algorithm.optimism.method={method}", "algorithm.optimism.kl_budget=0.5")
    _train_in_process("mbpo_resumable", ours, extra)
    assert (ours / "train.csv").read_bytes() != (mbrl_run / "train.csv").read_bytes()
    assert (ours / "model_train.csv").read_text().splitlines()[0] == (
        (mbrl_run / "model_train.csv").read_text().splitlines()[0]
    )  # the model's training is mbrl's (its own columns, no bound term)
    rows = (ours / "results.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"optimism_kl", "optimism_eta", "optimism_value_gain"} <= set(header)
    kl = [float(row.split(",")[header.index("optimism_kl")]) for row in rows[1:]]
    assert all(0 < k <= 0.5 + 1e-6 for k in kl)


def test_no_discriminator_is_built_or_fitted(tmp_path, monkeypatch, mbrl_run):
    import mbrl_bound_plugin.algorithms.bound as algorithm
    import mbrl_bound_plugin.algorithms.bound_run as run_module

    def refuse(*args, **kwargs):
        raise AssertionError("discriminator work with both bound terms off")

    monkeypatch.setattr(algorithm, "discriminator_step", refuse)
    monkeypatch.setattr(run_module.Discriminator, "__init__", refuse)
    monkeypatch.setattr(BoundSACAgent, "augmented_reward", refuse)
    _train_in_process("mbpo_resumable", tmp_path / "ours", ("overrides.num_steps=200",))
    header = (tmp_path / "ours" / "results.csv").read_text().splitlines()[0]
    assert header == (mbrl_run / "results.csv").read_text().splitlines()[0]
    assert "disc_accuracy" not in header


def test_killed_mid_epoch_it_resumes_to_the_same_logs(tmp_path, mbrl_run):
    run_dir = tmp_path / "run"
    args = ["algorithm=mbpo_resumable", *SETTINGS, f"hydra.run.dir={run_dir}"]
    exploration = 100  # algorithm.initial_exploration_steps in TINY_MBPO
    killed = subprocess.run(
        [sys.executable, str(DRIVER), "kill-at-step", str(exploration + 150), "--", *args],
        env=one_thread_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == ["step_000000100.ckpt"]
    resumed = subprocess.run(
        [sys.executable, "-m", "mbrl_bound_plugin", *args, "resume=true"],
        env=one_thread_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "environment step 100" in resumed.stderr
    for name in LOGS:
        assert (run_dir / name).read_bytes() == (mbrl_run / name).read_bytes(), name


@pytest.mark.parametrize("algorithm", ["bound", "bound_no_model_term", "bound_no_policy_term"])
def test_bound_arms_explore_the_same_transitions_as_mbpo(algorithm, tmp_path):
    """Same seed, same initial exploration data and initial SAC: the discriminator's
    initialization does not draw from torch's global generator."""
    from mbrl_bound_plugin.algorithms.bound_run import BoundRun

    explored = {}
    for name in ("mbpo_resumable", algorithm):
        cfg = compose([f"algorithm={name}", *SETTINGS])
        env, term_fn, _ = make_env(cfg)
        test_env, *_ = make_env(cfg)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        run = BoundRun(env, test_env, term_fn, cfg, work_dir=str(tmp_path / name), silent=True)
        # no ratio term anywhere, no discriminator: MBPO, and the policy-term ablation,
        # whose model term is the tilt toward V (the default optimism)
        assert (run.discriminator is None) == (name in ("mbpo_resumable", "bound_no_policy_term"))
        run.explore()
        explored[name] = (run.replay_buffer.get_all(), run.agent.sac_agent.policy.state_dict())
    (mbpo_rows, mbpo_policy), (rows, policy) = explored.values()
    assert len(rows) == len(mbpo_rows) > 0
    for field in ("obs", "act", "next_obs", "rewards"):
        np.testing.assert_array_equal(getattr(rows, field), getattr(mbpo_rows, field))
    for key, value in mbpo_policy.items():
        assert torch.equal(policy[key], value), key
