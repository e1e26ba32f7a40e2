"""Long runs: seeded reruns are identical, killed runs resume, bad checkpoints are refused.

Every run here is ``algorithm=bound`` on InvertedPendulum-v5 with the tiny budget of
``conftest`` stretched to 3 epochs of 100 steps (checkpoints at 100, 200 and 300
steps). The replay buffer is sized for the whole run (``dataset_size``), as it is in
real runs; mbrl's default (``num_steps``) is smaller than exploration + steps.
"""

from __future__ import annotations

import csv
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY_BOUND, TINY_MBPO

from mbrl_bound_plugin.util.checkpoint import list_checkpoints, load_checkpoint

pytestmark = pytest.mark.slow

DRIVER = pathlib.Path(__file__).with_name("crash_driver.py")
COMMON = [
    "overrides=mbpo_inv_pendulum_v5",
    "device=cpu",
    "log_frequency_agent=50",
    "+algorithm.dataset_size=1000",
    "overrides.num_steps=300",
]
RUN = ["algorithm=bound", *[o for o in TINY_BOUND if "num_steps" not in o], *COMMON]
MBPO_RUN = ["algorithm=mbpo", *[o for o in TINY_MBPO if "num_steps" not in o], *COMMON]
EXPLORATION = 100  # algorithm.initial_exploration_steps in TINY_MBPO


def _env() -> dict[str, str]:
    # one torch thread: the tests' subprocesses must not compete for the 2 cores
    return dict(os.environ, HYDRA_FULL_ERROR="0", OMP_NUM_THREADS="1")


def mbrl_bound(run_dir: pathlib.Path, *args: str, fault: tuple[str, int] | None = None):
    """Runs the command (through the fault driver when ``fault`` is given) in ``run_dir``."""
    cmd = [sys.executable]
    cmd += [str(DRIVER), fault[0], str(fault[1]), "--"] if fault else ["-m", "mbrl_bound_plugin"]
    cmd += [*args, f"hydra.run.dir={run_dir}"]
    return subprocess.run(
        cmd, cwd=run_dir.parent, env=_env(), capture_output=True, text=True, timeout=600
    )


def read_bytes(run_dir: pathlib.Path, name: str) -> bytes:
    return (run_dir / name).read_bytes()


def rows(run_dir: pathlib.Path, name: str = "results.csv") -> list[dict[str, str]]:
    with open(run_dir / name, newline="") as f:
        return list(csv.DictReader(f))


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("mbrl-bound:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pathlib.Path:
    """An uninterrupted run that keeps all three of its checkpoints."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    proc = mbrl_bound(run_dir, *RUN, "checkpoint.keep=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_uninterrupted_run_checkpoints_every_epoch(reference):
    found = list_checkpoints(reference / "checkpoints")
    assert [p.name for p in found] == [f"step_{s:09d}.ckpt" for s in (100, 200, 300)]
    last = load_checkpoint(found[-1])["run"]
    assert last["counters"]["env_steps"] == 300
    assert last["counters"]["epoch"] == 3
    assert last["replay_buffer"]["num_stored"] == EXPLORATION + 300
    assert [r["epoch"] for r in rows(reference)] == ["0.0", "1.0", "2.0"]


@pytest.mark.parametrize("args", [RUN, MBPO_RUN], ids=["bound", "mbpo"])
def test_two_runs_with_the_same_seed_write_identical_results(tmp_path, args):
    first, second = tmp_path / "first", tmp_path / "second"
    for run_dir in (first, second):
        proc = mbrl_bound(run_dir, *args, "overrides.num_steps=200")
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(rows(first)) == 2
    assert read_bytes(first, "results.csv") == read_bytes(second, "results.csv")
    other_seed = tmp_path / "other_seed"
    proc = mbrl_bound(other_seed, *args, "overrides.num_steps=200", "seed=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_bytes(other_seed, "results.csv") != read_bytes(first, "results.csv")


def _assert_resumed_as_reference(run_dir: pathlib.Path, reference: pathlib.Path) -> None:
    for name in ("results.csv", "model_train.csv", "train.csv"):
        assert read_bytes(run_dir, name) == read_bytes(reference, name), name
    resumed = np.load(run_dir / "replay_buffer.npz")
    expected = np.load(reference / "replay_buffer.npz")
    assert len(resumed["obs"]) == EXPLORATION + 300
    for key in expected.files:
        np.testing.assert_array_equal(resumed[key], expected[key])


def test_sigkill_during_an_epoch_then_resume_matches_the_uninterrupted_run(tmp_path, reference):
    run_dir = tmp_path / "run"
    # killed at loop step 150: the last checkpoint is the one at 100 steps
    proc = mbrl_bound(run_dir, *RUN, fault=("kill-at-step", EXPLORATION + 150))
    assert proc.returncode == -9
    found = list_checkpoints(run_dir / "checkpoints")
    assert [p.name for p in found] == ["step_000000100.ckpt"]
    at_kill = load_checkpoint(found[0])["run"]["replay_buffer"]
    assert at_kill["num_stored"] == EXPLORATION + 100

    proc = mbrl_bound(run_dir, *RUN, "resume=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stderr and "environment step 100" in proc.stderr
    # resumed on an epoch boundary: the same numbers as if never killed
    _assert_resumed_as_reference(run_dir, reference)
    # every transition collected up to the checkpoint is in the final buffer, in place
    final = np.load(run_dir / "replay_buffer.npz")
    np.testing.assert_array_equal(final["obs"][: EXPLORATION + 100], at_kill["obs"])
    np.testing.assert_array_equal(final["action"][: EXPLORATION + 100], at_kill["action"])
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == ["step_000000300.ckpt"]


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, reference):
    run_dir = tmp_path / "run"
    proc = mbrl_bound(run_dir, *RUN, fault=("kill-in-write", 2))  # the write at 200 steps
    assert proc.returncode == -9
    ckpt_dir = run_dir / "checkpoints"
    assert [p.name for p in list_checkpoints(ckpt_dir)] == ["step_000000100.ckpt"]
    partial = ckpt_dir / "step_000000200.ckpt.tmp"
    assert partial.is_file() and 0 < partial.stat().st_size

    proc = mbrl_bound(run_dir, *RUN, "resume=auto")  # what a requeued SLURM job passes
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_resumed_as_reference(run_dir, reference)
    assert not partial.exists()


def test_sigterm_checkpoints_mid_epoch_and_resume_completes_the_run(tmp_path, reference):
    run_dir = tmp_path / "run"
    proc = mbrl_bound(run_dir, *RUN, fault=("term-at-step", EXPLORATION + 150))
    assert proc.returncode == 128 + 15, proc.stderr[-3000:]
    line = one_line_error(proc)
    assert "SIGTERM at environment step 150" in line
    assert f"resume=true hydra.run.dir={run_dir}" in line  # the command to continue
    found = list_checkpoints(run_dir / "checkpoints")
    assert [p.name for p in found] == ["step_000000150.ckpt"]
    assert load_checkpoint(found[0])["run"]["replay_buffer"]["num_stored"] == EXPLORATION + 150

    proc = mbrl_bound(run_dir, *RUN, "resume=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = rows(run_dir)
    assert [(r["epoch"], r["env_step"], r["step"]) for r in results] == [
        ("0.0", "99.0", "1"),
        ("1.0", "199.0", "2"),
        ("2.0", "299.0", "3"),
    ]
    # before the checkpoint, the same numbers as the uninterrupted run; after it, a
    # fresh episode starts at step 150, so later epochs may differ
    assert results[0] == rows(reference)[0]
    assert len(np.load(run_dir / "replay_buffer.npz")["obs"]) == EXPLORATION + 300


def test_sigterm_under_a_framework_handler_checkpoints_and_goes_on(tmp_path, reference):
    # submitit installs its own SIGTERM handler (it ignores SIGTERM and requeues on USR2)
    run_dir = tmp_path / "run"
    proc = mbrl_bound(
        run_dir,
        *RUN,
        "checkpoint.keep=5",
        fault=("term-at-step-with-handler", EXPLORATION + 150),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("framework handler called") == 1
    found = [p.name for p in list_checkpoints(run_dir / "checkpoints")]
    assert found == [f"step_{s:09d}.ckpt" for s in (100, 150, 200, 300)]
    # writing a checkpoint draws no random number: the run is the uninterrupted one
    assert read_bytes(run_dir, "results.csv") == read_bytes(reference, "results.csv")


def test_full_disk_during_a_checkpoint_stops_with_the_previous_one_intact(tmp_path):
    run_dir = tmp_path / "run"
    proc = mbrl_bound(run_dir, *RUN, fault=("full-disk-at-write", 2))
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "step_000000200.ckpt" in line and "disk is full" in line
    assert "step_000000100.ckpt is intact" in line
    ckpt_dir = run_dir / "checkpoints"
    assert [p.name for p in list_checkpoints(ckpt_dir)] == ["step_000000100.ckpt"]
    assert load_checkpoint(ckpt_dir / "step_000000100.ckpt")["run"]["counters"]["env_steps"] == 100
    assert not list(ckpt_dir.glob("*.tmp"))


# ------------------------------------------------------------------- refusals


@pytest.fixture
def copied_run(tmp_path, reference) -> pathlib.Path:
    """A copy of the reference run whose newest checkpoint is the one at 200 steps."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    (run_dir / "checkpoints" / "step_000000300.ckpt").unlink()
    return run_dir


def _refused(run_dir: pathlib.Path, *args: str) -> str:
    proc = mbrl_bound(run_dir, *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    return one_line_error(proc)


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    line = _refused(tmp_path / "run", *RUN, "resume=true")
    assert "holds no checkpoint" in line and str(tmp_path / "run" / "checkpoints") in line


def test_a_fresh_start_over_an_earlier_runs_checkpoints_is_refused(copied_run):
    line = _refused(copied_run, *RUN)
    assert "step_000000200.ckpt" in line and "resume=true" in line


def test_a_truncated_checkpoint_is_refused(copied_run):
    path = copied_run / "checkpoints" / "step_000000200.ckpt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    line = _refused(copied_run, *RUN, "resume=true")
    assert str(path) in line and "truncated" in line


def test_a_corrupt_checkpoint_is_refused(copied_run):
    path = copied_run / "checkpoints" / "step_000000200.ckpt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    line = _refused(copied_run, *RUN, "resume=true")
    assert str(path) in line and "corrupt" in line


def test_a_checkpoint_of_another_observation_shape_is_refused(copied_run):
    line = _refused(copied_run, *RUN, "overrides=mbpo_mountain_car", "resume=true")
    assert "step_000000200.ckpt" in line and "obs_shape=[4]" in line and "[2]" in line


def test_a_checkpoint_of_another_network_size_is_refused(copied_run):
    line = _refused(copied_run, *RUN, "dynamics_model.hid_size=64", "resume=true")
    assert "step_000000200.ckpt" in line and "does not fit" in line


@pytest.mark.parametrize(
    "setting",
    ["checkpoint.keep=0", "checkpoint.every_epochs=0", "checkpoint.keep=two", "resume=maybe"],
)
def test_invalid_checkpoint_settings_are_refused(tmp_path, setting):
    line = _refused(tmp_path / "run", *RUN, setting)
    assert setting.split("=")[0].split(".")[-1] in line


def test_resume_with_another_algorithm_is_refused(copied_run):
    line = _refused(copied_run, *MBPO_RUN, "resume=true")
    assert "resume=true needs algorithm=bound" in line


def test_mbpo_with_resume_auto_starts_afresh(tmp_path):
    run_dir = tmp_path / "run"
    proc = mbrl_bound(run_dir, *MBPO_RUN, "resume=auto")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(rows(run_dir)) == 3


def test_a_run_with_budgeted_optimism_resumes_to_the_uninterrupted_logs(tmp_path):
    tilted = [*RUN, "algorithm.optimism.method=resample", "algorithm.optimism.kl_budget=0.3"]
    tilted += ["overrides.num_steps=200"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    proc = mbrl_bound(whole, *tilted)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "optimism_kl" in rows(whole)[0]
    proc = mbrl_bound(killed, *tilted, fault=("kill-at-step", EXPLORATION + 150))
    assert proc.returncode == -9
    proc = mbrl_bound(killed, *tilted, "resume=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("results.csv", "model_train.csv", "train.csv"):
        assert read_bytes(killed, name) == read_bytes(whole, name), name
