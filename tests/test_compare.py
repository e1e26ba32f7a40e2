"""mbrl-bound-compare: command lines, launchers, and the quick pipeline end to end."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import yaml
from conftest import one_thread_env
from hydra import compose, initialize_config_dir

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import mbrl_bound_conf_dir
from mbrl_bound_plugin.cli.compare import LAUNCHERS, load_settings, sweep_commands
from mbrl_bound_plugin.errors import CompareError
from mbrl_bound_plugin.report import ALGORITHM_COLORS, algorithm_colors, find_runs, make_report


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of every markdown table row in ``markdown``."""
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|")
    ]


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


def _composed_runs(settings, tmp_path, algorithms, **kwargs):
    """The config of every run of every sweep, composed and checked as ``mbrl-bound`` does."""
    from mbrl_bound_plugin.config.composition import check_config

    for _, argv in sweep_commands(
        settings, list(settings.tasks), algorithms, 1, tmp_path, **kwargs
    ):
        overrides = [a for a in argv if not a.startswith(("-m", "hydra.", "hydra/"))]
        for algorithm in argv[1].split("=")[1].split(","):
            single = [
                f"algorithm={algorithm}" if a.startswith("algorithm=") else a for a in overrides
            ]
            with initialize_config_dir(version_base="1.1", config_dir=str(mbrl_bound_conf_dir())):
                cfg = compose(config_name="main", overrides=single)
            check_config(cfg)
            yield cfg


@pytest.mark.parametrize("name", ["benchmark", "quick", "v2"])
def test_every_compare_run_composes(name, tmp_path):
    """Each sweep's overrides, with one value per swept key, compose to a valid config."""
    settings = load_settings(name)
    algorithms = list(settings.get("algorithms", ["bound", "mbpo", "pets"]))
    seen = set()
    for cfg in _composed_runs(settings, tmp_path, algorithms):
        seen.add(cfg.algorithm.name)
        budget = [
            o for o in settings.per_task[cfg.experiment.removeprefix("compare_")]
            if o.startswith("++overrides.num_steps=")
        ]  # fmt: skip
        if budget:
            assert cfg.overrides.num_steps == int(budget[0].split("=")[1])
    assert seen == set(algorithms)


def test_v2_runs_inverted_pendulum_with_mbrls_own_mbpo_settings(tmp_path):
    settings = load_settings("v2")
    assert settings.seeds == 5
    runs = list(_composed_runs(settings, tmp_path, ["bound", "mbpo"], resumable_mbpo=True))
    pendulum = [c for c in runs if c.experiment == "compare_inv_pendulum"]
    assert {c.algorithm.name for c in pendulum} == {"bound", "mbpo_resumable"}
    for cfg in pendulum:  # mbrl's mbpo_inv_pendulum and gaussian_mlp_ensemble, untouched
        assert cfg.overrides.effective_model_rollouts_per_step == 400
        assert cfg.overrides.num_sac_updates_per_step == 10
        assert cfg.overrides.sac_hidden_size == 256
        assert cfg.algorithm.initial_exploration_steps == 5000
        assert cfg.dynamics_model.ensemble_size == 7
    maze = [c for c in runs if c.experiment == "compare_point_maze"]
    assert {c.algorithm.initial_exploration_steps for c in maze} == {500}


def test_first_seed_and_settings_name(tmp_path):
    settings = load_settings("v2")
    ((_, argv),) = sweep_commands(settings, ["point_maze"], ["bound"], 3, tmp_path, first_seed=100)
    assert "seed=100,101,102" in argv
    with pytest.raises(CompareError, match="first-seed"):
        sweep_commands(settings, ["point_maze"], ["bound"], 3, tmp_path, first_seed=-1)
    with pytest.raises(CompareError, match="choose from: benchmark, maze_calibration, quick, v2"):
        load_settings("v3")


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
            "mbrl_bound_plugin.cli.compare",
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


@pytest.mark.parametrize(
    "launcher, target, lines",
    [
        ("mbrl_bound_slurm", "SlurmLauncher", ["max_num_timeout: 5", "signal_delay_s: 120"]),
        ("mbrl_bound_submitit_local", "LocalLauncher", ["max_num_timeout: 5"]),
        ("mbrl_bound_joblib", "JoblibLauncher", ["n_jobs: 2"]),
    ],
)
def test_launcher_configs_resolve(launcher, target, lines, run_cli):
    """`--cfg hydra` with each shipped launcher config selected.

    SLURM is compose-only here; the local submitit launcher runs in test_submitit.py.
    """
    proc = run_cli(
        "--cfg",
        "hydra",
        f"hydra/launcher={launcher}",
        "algorithm=bound",
        "overrides=mbpo_inv_pendulum_v5",
        root=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f".{target}\n" in proc.stdout
    for line in lines:
        assert f"    {line}\n" in proc.stdout


def _dry_run(*args: str) -> list[list[str]]:
    """The `mbrl-bound` command lines `mbrl-bound-compare --dry-run ARGS` prints."""
    proc = subprocess.run(
        [sys.executable, "-m", "mbrl_bound_plugin.cli.compare", "--dry-run", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line.split() for line in proc.stdout.splitlines() if line.startswith("mbrl-bound ")]
    assert all(line[:2] == ["mbrl-bound", "-m"] for line in lines)
    return [line[1:] for line in lines]


def _value(argv: list[str], key: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(f"{key}="))


def test_resumable_mbpo_runs_the_mbpo_arm_as_mbpo_resumable(tmp_path):
    args = ["--quick", "--tasks", "inv_pendulum", "--out", str(tmp_path)]
    plain = _dry_run(*args)
    resumable = _dry_run(*args, "--resumable-mbpo")
    assert [_value(a, "algorithm") for a in plain] == ["bound,mbpo", "pets"]
    assert [_value(a, "algorithm") for a in resumable] == ["bound,mbpo_resumable", "pets"]
    # the same sweep otherwise: overrides file, settings, seeds, directories, resume=auto
    for before, after in zip(plain, resumable, strict=True):
        assert [a for a in before if not a.startswith("algorithm=")] == [
            a for a in after if not a.startswith("algorithm=")
        ]
    assert _value(resumable[0], "overrides") == "mbpo_inv_pendulum_v5"
    assert "resume=auto" in resumable[0]
    only_mbpo = _dry_run(*args, "--resumable-mbpo", "--algorithms", "mbpo")
    assert [_value(a, "algorithm") for a in only_mbpo] == ["mbpo_resumable"]


def test_mbpo_resumable_composes_with_the_compare_settings(tmp_path):
    from mbrl_bound_plugin.config.composition import check_config

    settings = load_settings("benchmark")
    ((_, argv),) = sweep_commands(
        settings, ["inv_pendulum"], ["mbpo"], 1, tmp_path, resumable_mbpo=True
    )
    overrides = [a for a in argv if not a.startswith(("-m", "hydra.", "hydra/"))]
    with initialize_config_dir(version_base="1.1", config_dir=str(mbrl_bound_conf_dir())):
        cfg = compose(config_name="main", overrides=overrides)
    check_config(cfg)
    assert cfg.algorithm.name == "mbpo_resumable" and cfg.resume == "auto"
    assert cfg.overrides.num_steps == 2500 and cfg.overrides.epoch_length == 250


@pytest.mark.parametrize("launcher", ["joblib", "slurm", "submitit-local"])
def test_each_launcher_option_selects_its_config(launcher, tmp_path):
    args = ["--quick", "--tasks", "inv_pendulum", "--out", str(tmp_path)]
    for argv in _dry_run(*args, "--launcher", launcher, "--workers", "3"):
        assert f"hydra/launcher={LAUNCHERS[launcher]}" in argv
        assert ("hydra.launcher.n_jobs=3" in argv) == (launcher == "joblib")
        assert (
            mbrl_bound_conf_dir() / "hydra" / "launcher" / f"{LAUNCHERS[launcher]}.yaml"
        ).is_file()


def _fake_run(folder: pathlib.Path, algorithm: str, seed: int, final: float) -> None:
    """An mbrl-style run folder: `.hydra/config.yaml` and a three-row results.csv."""
    config = {
        "algorithm": {"name": algorithm},
        "overrides": {"env": "gym___InvertedPendulum-v5"},
        "seed": seed,
    }
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "results.csv").write_text(
        f"env_step,episode_reward\n99,{final / 4}\n199,{final / 2}\n299,{final}\n"
    )


def test_report_presents_mbpo_resumable_runs_as_mbpo(tmp_path):
    root = tmp_path / "cmp" / "inv_pendulum"
    _fake_run(root / "mbpo" / "bound_seed0", "bound", 0, 10.0)
    _fake_run(root / "mbpo" / "mbpo_resumable_seed0", "mbpo_resumable", 0, 20.0)
    _fake_run(root / "mbpo" / "mbpo_resumable_seed1", "mbpo_resumable", 1, 40.0)
    _fake_run(root / "pets" / "pets_seed0", "pets", 0, 5.0)
    runs = find_runs(tmp_path / "cmp")
    assert [(r.algorithm, r.seed) for r in runs] == [
        ("bound", 0),
        ("mbpo", 0),
        ("mbpo", 1),
        ("pets", 0),
    ]
    assert algorithm_colors(r.algorithm for r in runs)["mbpo"] == ALGORITHM_COLORS["mbpo"]
    written = make_report(tmp_path / "cmp")
    text = (tmp_path / "cmp" / "report.md").read_text()
    rows = table_rows(text)
    assert ["mbpo", "2", "**30.00**"] in [r[:3] for r in rows]  # one arm, two seeds, (20 + 40) / 2
    assert "mbpo_resumable" not in [r[0] for r in rows]  # nowhere as an algorithm of its own
    assert "mbpo_resumable" not in [r[1] for r in rows if len(r) > 1]
    assert "`inv_pendulum/mbpo/mbpo_resumable_seed1`" in text  # the folder says what ran
    assert [p.name for p in written] == ["report.md", "curves.png"]


@pytest.mark.slow
def test_quick_compare_end_to_end(tmp_path: pathlib.Path):
    out = tmp_path / "cmp"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbrl_bound_plugin.cli.compare",
            "--quick",
            "--out",
            str(out),
            "--",
            "device=cpu",
        ],
        env=one_thread_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    for task in ("InvertedPendulum-v5", "MountainCarContinuous-v0"):
        assert f"## {task}" in report
    rows = [r[:2] for r in table_rows(report)]
    for algorithm in ("bound", "mbpo", "pets"):
        assert [algorithm, "2"] in rows  # two seeds each
    for png in ("curves.png", "bound_diagnostics.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = sorted(p.parent.name for p in out.rglob("results.csv"))
    assert len(runs) == 12
