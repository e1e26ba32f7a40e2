"""benchmarks/overhead.py's arithmetic (its timings are the benchmark's business, not a test's)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import types

import pytest
from conftest import load_benchmark

PATH = pathlib.Path(__file__).parents[1] / "benchmarks" / "overhead.py"


@pytest.fixture(scope="module")
def overhead():
    return load_benchmark("overhead")


def summarized(tmp_path: pathlib.Path, saved: dict) -> list[str]:
    """The lines ``overhead.py --summarize`` prints for ``saved`` (a ``--json`` file's content)."""
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(saved))
    proc = subprocess.run(
        [sys.executable, str(PATH), "--summarize", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_bound_own_work_charges_the_shared_components_at_mbpos_time(overhead):
    mbpo = {"model updates": 3.0, "SAC updates": 60.0, "rollouts": 3.0, "other": 2.0}
    bound = {
        "model updates": 6.0,  # +3
        "discriminator step": 1.0,  # +1, bound only
        "model step tilt": 2.0,  # +2, bound only (inside the shared rollouts)
        "SAC updates": 75.0,  # shared: its +15 is not bound's own work
        "rollouts": 3.5,
        "other": 9.0,
    }
    assert overhead.own_work_ratio(bound, 68.0, mbpo) == pytest.approx((68.0 + 6.0) / 68.0)


def test_summarize_reprints_a_saved_run(overhead, tmp_path):
    parts = {"model updates": 0.0, "SAC updates": 0.0, "other": 0.0}

    def run(total, model, sac):
        return [
            total,
            {**parts, "model updates": model, "SAC updates": sac, "other": total - model - sac},
        ]

    saved = {
        "overrides": ["overrides=mbpo_inv_pendulum_v5"],
        "ratios": [1.2, 1.0],
        "runs": {
            "bound": [run(0.120, 0.020, 0.090), run(0.100, 0.020, 0.070)],
            "mbpo": [run(0.100, 0.010, 0.080), run(0.100, 0.010, 0.080)],
        },
    }
    lines = summarized(tmp_path, saved)
    assert "end to end, wall, over 2 repeats: 1.100 (min 1.000, max 1.200)" in lines[1]
    # own work: model updates +10 ms/step of 100 in both repeats, SAC's noise left out
    assert "bound's own work, wall, over 2 repeats: 1.100 (min 1.100, max 1.100)" in lines[2]
    assert "| model updates | 20.00 | 10.00 | +10.00 |" in lines
    # saved before CPU time was recorded: the wall-time tables only
    assert not any("CPU" in line for line in lines)


def test_summarize_prints_cpu_time_beside_wall_time(overhead, tmp_path):
    def run(wall, wall_sac, cpu, cpu_sac):
        return [
            wall,
            {"SAC updates": wall_sac, "other": wall - wall_sac},
            cpu,
            {"SAC updates": cpu_sac, "other": cpu - cpu_sac},
        ]

    # bound's SAC updates took 30 ms/step longer on the wall clock, the same CPU time
    runs = {"bound": [run(0.130, 0.110, 0.090, 0.080)], "mbpo": [run(0.100, 0.080, 0.090, 0.080)]}
    lines = summarized(tmp_path, {"overrides": [], "ratios": [1.3], "runs": runs})
    assert any("end to end, wall, over 1 repeats: 1.300" in line for line in lines)
    assert any("end to end, CPU, over 1 repeats: 1.000" in line for line in lines)
    assert "| SAC updates | 110.00 | 80.00 | +30.00 |" in lines
    assert "| SAC updates | 80.00 | 80.00 | +0.00 |" in lines
    assert "threads" not in lines[0]  # saved before the file recorded them


def test_summarize_says_the_threads_and_denormal_flushing_it_ran_with(overhead, tmp_path):
    runs = {"bound": [[0.11, {"other": 0.11}]], "mbpo": [[0.10, {"other": 0.10}]]}
    for flush, says in [(True, True), (False, False)]:
        saved = {"overrides": ["seed=3"], "threads": 1, "flush_denormal": flush, "runs": runs}
        header = summarized(tmp_path, saved)[0]
        assert "seed=3" in header and "1 threads" in header
        assert ("denormals flushed to zero" in header) is says


def test_timers_charge_waiting_to_the_wall_clock_only_and_exclude_nested_components(
    overhead, monkeypatch
):
    clock = types.SimpleNamespace(wall=100.0, cpu=10.0)
    monkeypatch.setattr(
        overhead,
        "time",
        types.SimpleNamespace(perf_counter=lambda: clock.wall, process_time=lambda: clock.cpu),
    )

    def sleep(seconds):
        clock.wall += seconds

    def spin(seconds):
        clock.wall += seconds
        clock.cpu += seconds

    timers = overhead.Timers()
    inner = timers._timed("inner", lambda: (sleep(0.5), spin(0.05)))
    outer = timers._timed("outer", lambda: (spin(0.1), inner()))
    outer()
    assert timers.seconds["inner"] == pytest.approx(0.55)
    assert timers.cpu_seconds["inner"] == pytest.approx(0.05)  # the sleep is not CPU time
    # outer's own time is its spin, not inner's sleep or spin
    assert timers.cpu_seconds["outer"] == pytest.approx(0.1)
    assert timers.seconds["outer"] == pytest.approx(0.1)
    outer()  # a second call adds to each component
    assert timers.seconds == pytest.approx({"inner": 1.1, "outer": 0.2})


def test_summarize_prints_the_model_epochs_and_early_stopping_of_a_saved_run(overhead, tmp_path):
    def run(wall, epochs):
        return [wall, {"other": wall}, wall, {"other": wall}, epochs]

    runs = {"bound": [run(0.11, 60), run(0.12, 75)], "mbpo": [run(0.10, 40), run(0.10, 45)]}
    saved = {"overrides": [], "threads": 1, "early_stopping": True, "runs": runs}
    lines = summarized(tmp_path, saved)
    assert "mbrl's early stopping" in lines[0]
    assert "model epochs trained, bound: 60, 75" in lines
    assert "model epochs trained, mbpo: 40, 45" in lines
    assert any("end to end, CPU, over 2 repeats: 1.150" in line for line in lines)


def test_counting_model_epochs_counts_each_training_of_mbrls_trainer(overhead):
    import mbrl.models
    import mbrl.util.replay_buffer
    import numpy as np

    rng = np.random.default_rng(0)
    buffer = mbrl.util.replay_buffer.ReplayBuffer(64, (2,), (1,), rng=rng)
    for _ in range(64):
        buffer.add(rng.normal(size=2), rng.normal(size=1), rng.normal(size=2), 0.0, False, False)
    member = mbrl.models.GaussianMLP(in_size=3, out_size=2, device="cpu", hid_size=8)
    model = mbrl.models.OneDTransitionRewardModel(member, learned_rewards=False)
    dataset = mbrl.util.replay_buffer.TransitionIterator(buffer.get_all(), batch_size=16)
    trainer = mbrl.models.ModelTrainer(model)
    original = mbrl.models.ModelTrainer.train
    with overhead.counting_model_epochs() as epochs:
        trainer.train(dataset, num_epochs=3)
        trainer.train(dataset, num_epochs=2)
    assert epochs == [3, 2]
    assert mbrl.models.ModelTrainer.train is original  # unwrapped on exit


def test_every_name_the_training_modules_call_a_timed_function_by_is_wrapped(overhead):
    # a function imported by name (from mbrl.algorithms.mbpo import f) is a second
    # reference: wrapping only mbrl's module would leave bound's calls untimed
    originals = {
        id(owner.__dict__[attr]) for _, targets in overhead.COMPONENTS for owner, attr in targets
    }
    with overhead.Timers().installed():
        for module in (overhead.bound_algorithm, overhead.mbpo):
            unwrapped = [name for name, obj in vars(module).items() if id(obj) in originals]
            assert unwrapped == [], module.__name__
