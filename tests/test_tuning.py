"""benchmarks/tuning.py on synthetic variant folders: known returns in, known table out."""

from __future__ import annotations

import pathlib

import pandas as pd
import pytest
import yaml
from conftest import load_benchmark


def variant(root: pathlib.Path, name: str, returns: dict[int, float], extra: list[str]):
    """A variant folder as ``mbrl-bound-compare --out root/name`` leaves it, with a constant
    return per seed (so that its AUC over any span is that return)."""
    for seed, value in returns.items():
        run = root / name / "inv_pendulum" / "mbpo" / f"bound_seed{seed}"
        (run / ".hydra").mkdir(parents=True)
        config = {
            "algorithm": {"name": "bound"},
            "overrides": {"env": "gym___InvertedPendulum-v5", "num_steps": 300},
            "seed": seed,
        }
        (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        overrides = ["overrides=mbpo_inv_pendulum_v5", f"seed={seed}", "resume=auto", *extra]
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        steps = [99.0, 199.0, 299.0]
        pd.DataFrame({"env_step": steps, "episode_reward": [value] * 3}).to_csv(
            run / "results.csv", index=False
        )
    return root / name


@pytest.fixture(scope="module")
def tuning():
    return load_benchmark("tuning")


@pytest.fixture
def folders(tmp_path: pathlib.Path) -> list[pathlib.Path]:
    return [
        variant(tmp_path, "defaults", {100: 10.0, 101: 20.0}, []),
        variant(tmp_path, "clip3", {100: 15.0, 101: 40.0}, ["algorithm.bound_agent.clip=3.0"]),
    ]


def test_the_table_gives_each_variants_auc_and_its_difference_to_the_baseline(
    tuning, folders, tmp_path, capsys
):
    png = tmp_path / "plots" / "tuning.png"
    assert tuning.main([*map(str, folders), "--plot", str(png)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "AUC: mean return over env steps 99-299." in lines
    assert (
        "| clip3 | `algorithm.bound_agent.clip=3.0` | 2 | 15.0 40.0 | 27.5 | 15.0 40.0 | 27.5 "
        "| +5.0 +20.0 | +12.5 |" in lines
    )
    assert any(line.startswith("| defaults | `(defaults)` | 2 |") for line in lines)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_another_baseline_turns_the_differences_round(tuning, folders, capsys):
    assert tuning.main([*map(str, folders), "--baseline", "clip3"]) == 0
    assert any(line.startswith("| defaults |") and "| -5.0 -20.0 | -12.5 |" in line
               for line in capsys.readouterr().out.splitlines())  # fmt: skip


def test_a_baseline_that_is_not_a_folder_is_a_usage_error(tuning, folders, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tuning.main([*map(str, folders), "--baseline", "lam1"])
    assert exit_info.value.code == 2
    assert "--baseline lam1 is not one of the folders: defaults, clip3" in capsys.readouterr().err
