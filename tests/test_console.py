"""The quiet console: the log files keep every row, the console gets a line an epoch."""

from __future__ import annotations

import csv
import pathlib

import mbrl.constants
import mbrl.util
import pytest
from conftest import TINY_BOUND, TINY_MBPO

import mbrl_bound_plugin as mbb
from mbrl_bound_plugin.env.factory import make_env
from mbrl_bound_plugin.util.console import ConsoleLogger, quiet_console

MODEL_FORMAT = [("model_loss", "MLOSS", "float")]
RESULTS_FORMAT = [("env_step", "S", "int"), ("episode_reward", "R", "float")]


def _log_rows(logger: mbrl.util.Logger) -> None:
    """Three model_train rows, a results row, a row of SAC's train group."""
    logger.register_group("model_train", MODEL_FORMAT)
    logger.register_group(mbrl.constants.RESULTS_LOG_NAME, RESULTS_FORMAT)
    for i in range(3):
        logger.log_data("model_train", {"model_loss": 1.0 / (i + 1)})
    logger.log_data(mbrl.constants.RESULTS_LOG_NAME, {"env_step": 99, "episode_reward": 7.0})
    logger.log("train/batch_reward", 0.5, 0)  # SAC's group, dumped by pytorch_sac's call
    logger.dump(1, save=True)


def _rows(path: pathlib.Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_quiet_logger_prints_only_results_but_its_csvs_keep_every_row(tmp_path, capsys):
    _log_rows(ConsoleLogger(tmp_path, enable_back_compatible=True))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert mbrl.constants.RESULTS_LOG_NAME in lines[0] and "S: 99" in lines[0]
    assert [float(r["model_loss"]) for r in _rows(tmp_path / "model_train.csv")] == [
        pytest.approx(1.0),
        pytest.approx(0.5),
        pytest.approx(1 / 3),
    ]
    assert [float(r["env_step"]) for r in _rows(tmp_path / "results.csv")] == [99]
    assert [float(r["batch_reward"]) for r in _rows(tmp_path / "train.csv")] == [0.5]


def test_verbose_logger_prints_every_group_as_mbrls_does(tmp_path, capsys):
    for d in ("mbrl", "ours"):
        (tmp_path / d).mkdir()
    _log_rows(mbrl.util.Logger(tmp_path / "mbrl", enable_back_compatible=True))
    mbrls = capsys.readouterr().out
    _log_rows(ConsoleLogger(tmp_path / "ours", enable_back_compatible=True, verbose=True))
    ours = capsys.readouterr().out
    assert ours == mbrls
    assert len(ours.splitlines()) == 5  # three model_train, results, train


def test_quiet_console_makes_mbrls_loggers_quiet_inside_only(tmp_path, capsys):
    for d in ("in", "verbose", "out"):
        (tmp_path / d).mkdir()
    with quiet_console():
        logger = mbrl.util.Logger(tmp_path / "in", enable_back_compatible=True)
    assert isinstance(logger, ConsoleLogger) and not logger.verbose
    with quiet_console(verbose=True):
        assert mbrl.util.Logger(tmp_path / "verbose").verbose
    assert not isinstance(mbrl.util.Logger(tmp_path / "out"), ConsoleLogger)
    _log_rows(logger)
    assert len(capsys.readouterr().out.splitlines()) == 1


@pytest.mark.slow
def test_a_bound_run_prints_one_line_per_epoch(tmp_path, capsys, one_torch_thread):
    cfg = mbb.compose(["algorithm=bound", "overrides=mbpo_inv_pendulum_v5", *TINY_BOUND])
    env, term_fn, _ = make_env(cfg)
    test_env, *_ = make_env(cfg)
    with quiet_console(cfg.verbose):  # as the mbrl-bound command runs it
        mbb.train(env, test_env, term_fn, cfg, silent=False, work_dir=str(tmp_path))
    lines = capsys.readouterr().out.splitlines()
    epochs = cfg.overrides.num_steps // cfg.overrides.epoch_length
    assert len(lines) == epochs == 2  # (and no "Saving models to", SAC's, at a new best)
    assert all(mbrl.constants.RESULTS_LOG_NAME in line and "DACC" in line for line in lines)
    # while model_train.csv has its rows (mbrl's early stopping: at least one per training)
    assert len(_rows(tmp_path / "model_train.csv")) >= epochs


@pytest.mark.slow
def test_mbrls_mbpo_through_the_command_is_quiet_unless_verbose(run_cli, tmp_path):
    """mbrl's own ``mbpo.train``: its results lines only; ``verbose=true``: mbrl's console."""
    tiny = ["algorithm=mbpo", "overrides=mbpo_inv_pendulum", *TINY_MBPO]
    quiet = run_cli(*tiny, f"root_dir={tmp_path / 'quiet'}", root=False)
    verbose = run_cli(*tiny, "verbose=true", f"root_dir={tmp_path / 'verbose'}", root=False)
    assert quiet.returncode == verbose.returncode == 0, quiet.stderr[-3000:]
    # two epochs: two results lines, and where the results are
    *epoch_lines, where = quiet.stdout.splitlines()
    assert where.startswith("mbrl-bound: results in "), quiet.stdout
    assert len(epoch_lines) == 2, quiet.stdout
    assert all(mbrl.constants.RESULTS_LOG_NAME in line for line in epoch_lines)
    assert "model_train" in verbose.stdout and "Saving models" in verbose.stdout
    # the log files are the same either way
    for name in ("results.csv", "model_train.csv"):
        (q,) = (tmp_path / "quiet").rglob(name)
        (v,) = (tmp_path / "verbose").rglob(name)
        assert q.read_bytes() == v.read_bytes()
