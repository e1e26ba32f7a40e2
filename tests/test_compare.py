"""mbrl-bound-compare: command lines, launchers, and the quick pipeline end to end."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import mbrl_bound_conf_dir
from mbrl_bound_plugin.compare import load_settings, sweep_commands
from mbrl_bound_plugin.errors import CompareError


@pytest.mark.parametrize("name", ["benchmark", "quick"])
def test_bound_and_mbpo_share_settings_and_overrides_file(name, tmp_path):
    settings = load_settings(name)
    commands = sweep_commands(
        settings, list(settings.tasks), ["bound", "mbpo", "pets"], 3, tmp_path
    )
    assert len(commands) == 2 * len(settings.tasks)
    for (label, argv), task in zip(commands[::2], settings.tasks, strict=True):
        assert label == f"{task} bound+mbpo"
        assert "algorithm=bound,mbpo" in argv  # one sweep: same overrides, same settings
        assert f"overrides={settings.tasks[task].mbpo}" in argv
        assert "seed=0,1,2" in argv
        assert "resume=auto" in argv  # rerunning a comparison continues its bound runs
    for _label, argv in commands[1::2]:
        assert "algorithm=pets" in argv and "seed=0,1,2" in argv
    # the shared settings and the task budget reach every algorithm alike
    for _, argv in commands:
        assert all(setting in argv for setting in settings.shared)


@pytest.mark.parametrize("name", ["benchmark", "quick"])
def test_every_compare_run_composes(name, tmp_path):
    """Each sweep's overrides, with one value per swept key, compose to a valid config."""
    from mbrl_bound_plugin.config import check_config

    settings = load_settings(name)
    for _, argv in sweep_commands(
        settings, list(settings.tasks), ["bound", "mbpo", "pets"], 1, tmp_path
    ):
        overrides = [a for a in argv if not a.startswith(("-m", "hydra.", "hydra/"))]
        for algorithm in argv[1].split("=")[1].split(","):
            single = [
                f"algorithm={algorithm}" if a.startswith("algorithm=") else a for a in overrides
            ]
            with initialize_config_dir(version_base="1.1", config_dir=str(mbrl_bound_conf_dir())):
                cfg = compose(config_name="main", overrides=single)
            check_config(cfg)
            assert cfg.overrides.num_steps == int(
                settings.per_task[cfg.experiment.removeprefix("compare_")][0].split("=")[1]
            )


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"tasks": ["nope"]}, "unknown task 'nope'"),
        ({"algorithms": ["nope"]}, "unknown algorithm 'nope'"),
        ({"launcher": "nope"}, "unknown launcher"),
        ({"seeds": 0}, ">= 1"),
    ],
)
def test_bad_input(kwargs, fragment, tmp_path):
    args = {"tasks": ["inv_pendulum"], "algorithms": ["bound"], "seeds": 1} | kwargs
    with pytest.raises(CompareError, match=fragment):
        sweep_commands(load_settings("quick"), out=tmp_path, **args)


def test_bad_task_on_the_command_line_is_exit_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbrl_bound_plugin.compare",
            "--quick",
            "--tasks",
            "nope",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "mbrl-bound-compare: error: unknown task 'nope'; choose from: "
        "inv_pendulum, mountain_car, halfcheetah"
    ]


@pytest.mark.parametrize("launcher", ["mbrl_bound_slurm", "mbrl_bound_joblib"])
def test_launcher_configs_resolve(launcher, run_cli):
    """`--cfg hydra` with the shipped launcher configs selected (SLURM is compose-only)."""
    proc = run_cli(
        "--cfg",
        "hydra",
        f"hydra/launcher={launcher}",
        "algorithm=bound",
        "overrides=mbpo_inv_pendulum_v5",
        root=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    target = "SlurmLauncher" if "slurm" in launcher else "JoblibLauncher"
    assert target in proc.stdout
    if "slurm" in launcher:
        assert "max_num_timeout: 3" in proc.stdout


@pytest.mark.slow
def test_quick_compare_end_to_end(tmp_path: pathlib.Path):
    out = tmp_path / "cmp"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbrl_bound_plugin.compare",
            "--quick",
            "--out",
            str(out),
            "--",
            "device=cpu",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    for task in ("InvertedPendulum-v5", "MountainCarContinuous-v0"):
        assert f"## {task}" in report
    for algorithm in ("bound", "mbpo", "pets"):
        assert f"| {algorithm} | 2 |" in report  # two seeds each
    for png in ("curves.png", "bound_diagnostics.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = sorted(p.parent.name for p in out.rglob("results.csv"))
    assert len(runs) == 12
