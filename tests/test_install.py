"""A non-editable install into a fresh virtual environment finds every config."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_install_in_a_fresh_venv(tmp_path: pathlib.Path):
    venv = tmp_path / "venv"
    subprocess.run(
        ["bash", str(REPO / "scripts" / "bootstrap.sh"), str(venv), "wheel"],
        check=True,
        timeout=1800,
    )
    python = venv / "bin" / "python"
    where = subprocess.run(
        [
            str(python),
            "-c",
            "from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import "
            "mbrl_bound_conf_dir; print(mbrl_bound_conf_dir())",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    conf = pathlib.Path(where.stdout.strip())
    assert conf.is_relative_to(venv), f"configs read from {conf}, not the installed package"
    assert (conf / "algorithm" / "bound.yaml").is_file()

    job = subprocess.run(
        [
            str(venv / "bin" / "mbrl-bound"),
            "--cfg",
            "job",
            "algorithm=bound",
            "overrides=mbpo_inv_pendulum_v5",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert job.returncode == 0, job.stderr[-2000:]
    assert "mbrl_bound_plugin.models.model_wrapper.BoundTransitionRewardModel" in job.stdout
    assert "gym___InvertedPendulum-v5" in job.stdout

    # mbrl's own main.yaml, composed by plain Hydra in that venv, sees the plugin
    compose = subprocess.run(
        [
            str(python),
            "-c",
            "import pathlib, mbrl; from hydra import compose, initialize_config_dir\n"
            "d = pathlib.Path(mbrl.__file__).parent / 'examples' / 'conf'\n"
            "with initialize_config_dir(version_base='1.1', config_dir=str(d)):\n"
            "    cfg = compose('main', ['algorithm=mbpo', 'overrides=mbpo_inv_pendulum'])\n"
            "print(cfg.action_optimizer._target_, cfg.algorithm.name)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert compose.returncode == 0, compose.stderr[-2000:]
    assert compose.stdout.split() == ["mbrl.planning.CEMOptimizer", "mbpo"]
