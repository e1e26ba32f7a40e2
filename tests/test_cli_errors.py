"""Bad input: one line on stderr saying what to change, exit code 2, no traceback."""

from __future__ import annotations

import csv
import math
import pathlib
import re

import pytest
import torch
from conftest import TINY_BOUND

from mbrl_bound_plugin.cli import main as cli
from mbrl_bound_plugin.cli.main import preflight
from mbrl_bound_plugin.errors import STOPPED_FILE, NumericalError, UsageError
from mbrl_bound_plugin.util import wall_time


def _assert_usage_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mbrl-bound: error: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def refused(refused_in_process):
    """The command's entry point on bad input, in this process (the real command in a
    subprocess: test_bad_input.py): exit code 2, one line, nothing written."""

    def check(*args: str, fragments: tuple[str, ...], root: bool = True) -> None:
        line = refused_in_process(*args, root=root)
        for fragment in fragments:
            assert fragment in line, line

    return check


def test_unknown_algorithm(refused):
    refused("algorithm=nope", fragments=("unknown algorithm 'nope'", "bound", "mbpo"))


def test_unknown_overrides(refused):
    refused("overrides=nope", fragments=("unknown overrides 'nope'", "pets_cartpole"))


def test_unknown_choice_in_a_sweep(refused):
    refused("-m", "algorithm=mbpo,nope", fragments=("unknown algorithm 'nope'",))


def test_unknown_gymnasium_env_id(refused):
    refused(
        "algorithm=mbpo",
        "overrides=mbpo_inv_pendulum_v5",
        "overrides.env=gym___Nope-v0",
        fragments=("unknown gymnasium env id 'Nope-v0'",),
    )


def test_overrides_missing_a_key_the_algorithm_reads(refused):
    refused(
        "algorithm=mbpo",
        "overrides=mbpo_inv_pendulum",
        "~overrides.epoch_length",
        fragments=("overrides=mbpo_inv_pendulum lacks key 'epoch_length'",),
    )


def test_overrides_of_the_wrong_family(refused):
    """PETS overrides lack the SAC keys that MBPO's config interpolates."""
    refused(
        "algorithm=mbpo",
        "overrides=pets_cartpole",
        fragments=("overrides=pets_cartpole", "algorithm=mbpo"),
    )


def test_non_writable_output_dir(refused, tmp_path: pathlib.Path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    refused(
        "algorithm=mbpo",
        f"root_dir={blocker}/exp",
        root=False,
        fragments=("not writable", "root_dir="),
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda(refused):
    refused(
        "algorithm=mbpo",
        "overrides=mbpo_inv_pendulum_v5",
        "device=cuda:0",
        fragments=("device=cuda:0", "CUDA is not available"),
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["algorithm.model_wrapper.beta=-1"], "beta must be >= 0"),
        (["algorithm.bound_agent.lam=-1"], "lam must be >= 0"),
        (["algorithm.bound_agent.mode=bound"], "needs reward_floor"),
        (["discriminator.batch_size=0"], "discriminator.batch_size must be an integer"),
    ],
)
def test_bound_invalid_settings(refused, args, fragment):
    refused(
        "algorithm=bound",
        "overrides=mbpo_inv_pendulum_v5",
        *TINY_BOUND,
        *args,
        fragments=(fragment,),
    )


def test_a_reward_floor_above_an_observed_reward_stops_the_run_in_one_line(run_cli):
    """Known only once the run has explored: the Hydra task, in the real command, refuses.

    (InvertedPendulum gives reward 1 per step: a floor of 5 is above it.)
    """
    proc = run_cli(
        "algorithm=bound",
        "overrides=mbpo_inv_pendulum_v5",
        *TINY_BOUND,
        "algorithm.bound_agent.mode=bound",
        "algorithm.bound_agent.reward_floor=5",
        timeout=120,
    )
    _assert_usage_error(proc, "not below an observed reward")


@pytest.mark.slow
def test_a_discriminator_batch_larger_than_the_rows_trains_on_all_of_them(run_cli, results):
    """No longer refused: each discriminator update takes every training row, said once."""
    proc = run_cli(
        "algorithm=bound",
        "overrides=mbpo_inv_pendulum_v5",
        *TINY_BOUND,
        "discriminator.batch_size=100000",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    said = [line for line in proc.stdout.splitlines() if "discriminator.batch_size" in line]
    # two discriminator steps ran (one per model training); the line comes with the first
    assert len(said) == 1, proc.stdout[-3000:]
    assert "[INFO]" in said[0]
    assert re.search(
        r"discriminator\.batch_size=100000 is more than the \d+ training rows: each "
        r"discriminator update uses all of them",
        said[0],
    ), said[0]
    rows = results()
    assert [int(float(r["epoch"])) for r in rows] == [0, 1]
    for row in rows:
        assert 0.0 <= float(row["disc_accuracy"]) <= 1.0
        assert math.isfinite(float(row["disc_logloss"]))


# --- the command line is read with Hydra's own parsers (preflight, no run) ---


MBPO_TASK = "overrides=mbpo_inv_pendulum_v5"


@pytest.mark.parametrize(
    "argv",
    [
        ["algorithm='bound'", MBPO_TASK],
        ['algorithm="mbpo"', MBPO_TASK],
        ["-m", "algorithm=choice(bound,mbpo)", MBPO_TASK],
        ["-m", "algorithm=glob(*,exclude=[pets,planet])", MBPO_TASK],
        ["-m", "algorithm=glob(mbpo*)", MBPO_TASK, "seed=range(3)"],
        ["--multirun", "algorithm=bound,mbpo", MBPO_TASK],
        ["algorithm=mbpo", MBPO_TASK, "~overrides.patience", "+overrides.x='a b'"],
        ["--cfg", "job", "algorithm=bound"],
        ["--cfg", "job", "algorithm=bound", "seed=abc"],  # (prints; checks at run time)
        ["--help"],
    ],
)
def test_preflight_accepts_hydra_syntax(argv, tmp_path: pathlib.Path):
    preflight([*argv, f"root_dir={tmp_path}"])
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["algorithm='nope'"], "unknown algorithm 'nope'"),
        (["-m", "algorithm=choice(bound,nope)"], "unknown algorithm 'nope'"),
        (
            ["-m", "overrides=choice(mbpo_inv_pendulum_v5,pets_nope)"],
            "unknown overrides 'pets_nope'",
        ),
        (["-m", "algorithm=glob(zz*)"], "algorithm=glob(zz*) matches no option"),
        (["algorithm=choice(bound"], "cannot parse the override 'algorithm=choice(bound'"),
    ],
)
def test_preflight_refuses_unknown_choices_in_any_syntax(argv, fragment, tmp_path):
    with pytest.raises(UsageError) as err:
        preflight([*argv, f"root_dir={tmp_path}"])
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_preflight_reads_a_quoted_output_directory(tmp_path: pathlib.Path):
    blocker = tmp_path / "a file"
    blocker.write_text("not a directory")
    with pytest.raises(UsageError, match="not writable"):
        preflight([f"root_dir='{blocker}/exp'"])


@pytest.mark.slow
def test_a_multirun_with_quoted_and_choice_syntax_runs_each_job(mbpo_sweep):
    """conftest's MBPO sweep: ``algorithm='mbpo' overrides=choice(...)``, one job each."""
    from conftest import MBPO_TASKS

    assert mbpo_sweep.proc.returncode == 0, mbpo_sweep.proc.stderr[-3000:]
    assert sorted(mbpo_sweep.results) == sorted(MBPO_TASKS)
    assert all(mbpo_sweep.results.values())


def test_a_run_stopped_by_a_nan_is_marked_in_its_folder_until_it_runs_again(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.chdir(tmp_path)  # (Hydra runs the task in the run's folder)

    def diverges(cfg):
        raise NumericalError("SAC loss is not finite at environment step 7")

    monkeypatch.setattr(cli, "run", diverges)
    with pytest.raises(SystemExit) as stop:
        cli._task(None)
    assert stop.value.code == 1
    assert (tmp_path / STOPPED_FILE).read_text() == "SAC loss is not finite at environment step 7\n"
    assert "mbrl-bound: stopped: SAC loss is not finite" in capsys.readouterr().err
    monkeypatch.setattr(cli, "run", lambda cfg: 1.0)  # resumed, and finishes this time
    assert cli._task(None) == 1.0
    assert not (tmp_path / STOPPED_FILE).exists()
    # each session has its row in the run's wall_time.csv, with how it ended
    with (tmp_path / wall_time.WALL_TIME_FILE).open(newline="") as f:
        assert [row["ended"] for row in csv.DictReader(f)] == ["stopped", "completed"]


def test_in_a_sweep_a_stopped_run_returns_nan_so_the_other_seeds_still_run(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)

    def diverges(cfg):
        raise NumericalError("model loss is not finite at environment step 3")

    monkeypatch.setattr(cli, "run", diverges)
    monkeypatch.setattr(cli, "_in_sweep", lambda: True)
    assert math.isnan(cli._task(None))
    assert (tmp_path / STOPPED_FILE).read_text().startswith("model loss is not finite")
    monkeypatch.setattr(cli, "_in_sweep", lambda: False)  # alone: exit code 1
    with pytest.raises(SystemExit) as stop:
        cli._task(None)
    assert stop.value.code == 1
