"""benchmarks/overhead.py's arithmetic (its timings are the benchmark's business, not a test's)."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

PATH = pathlib.Path(__file__).parents[1] / "benchmarks" / "overhead.py"


@pytest.fixture(scope="module")
def overhead():
    spec = importlib.util.spec_from_file_location("overhead", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bound_own_work_charges_the_shared_components_at_mbpos_time(overhead):
    mbpo = {"model updates": 3.0, "SAC updates": 60.0, "rollouts": 3.0, "other": 2.0}
    bound = {
        "model updates": 6.0,  # +3
        "discriminator step": 1.0,  # +1, bound only
        "SAC updates": 75.0,  # shared: its +15 is not bound's own work
        "rollouts": 3.5,
        "other": 9.0,
    }
    assert overhead.own_work_ratio(bound, 68.0, mbpo) == pytest.approx((68.0 + 4.0) / 68.0)


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
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(saved))
    proc = subprocess.run(
        [sys.executable, str(PATH), "--summarize", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "end to end, over 2 repeats: 1.100 (min 1.000, max 1.200)" in lines[1]
    # own work: model updates +10 ms/step of 100 in both repeats, SAC's noise left out
    assert "bound's own work, over 2 repeats: 1.100 (min 1.100, max 1.100)" in lines[2]
    assert "| model updates | 20.00 | 10.00 | +10.00 |" in lines
