"""A non-editable install into a fresh virtual environment finds every config.

The package itself is built as a wheel and installed, by ``scripts/bootstrap.sh VENV
wheel``, into a new virtual environment, and run from there. Its dependencies (torch,
mbrl, hydra, ...: minutes to download and unpack) are not installed again: the new
environment sees this one's ``site-packages`` through a ``.pth`` file, after its own, so
pip finds each requirement already satisfied at the version it asks for, and
``mbrl_bound_plugin`` is imported from the new environment only. Set
``MBRL_BOUND_TEST_FULL_INSTALL=1`` to install the dependencies afresh as well.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import sysconfig

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# (a PYTHONPATH pointing at a checkout would hide the installed package)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _share_dependencies(venv: pathlib.Path) -> None:
    """Makes this environment's packages importable in ``venv`` (after its own)."""
    site = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    # (a path in a .pth file goes on sys.path; .pth files inside it are not read, so
    # this environment's editable install of the package is not seen)
    pathlib.Path(site, "_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")


@pytest.mark.slow
def test_wheel_install_in_a_fresh_venv(tmp_path: pathlib.Path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if os.environ.get("MBRL_BOUND_TEST_FULL_INSTALL") != "1":
        _share_dependencies(venv)
    subprocess.run(
        ["bash", str(REPO / "scripts" / "bootstrap.sh"), str(venv), "wheel"],
        check=True,
        timeout=1800,
        env=ENV,
    )
    python = venv / "bin" / "python"
    where = subprocess.run(
        [
            str(python),
            "-c",
            "from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import "
            "mbrl_bound_conf_dir; import mbrl_bound_plugin\n"
            "print(mbrl_bound_conf_dir()); print(mbrl_bound_plugin.__file__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
    )
    conf, code = map(pathlib.Path, where.stdout.split())
    assert code.is_relative_to(venv), f"the package imported from {code}, not the venv"
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
        env=ENV,
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
        env=ENV,
    )
    assert compose.returncode == 0, compose.stderr[-2000:]
    assert compose.stdout.split() == ["mbrl.planning.CEMOptimizer", "mbpo"]
