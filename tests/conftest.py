"""Shared fixtures: run the ``mbrl-bound`` command on tiny budgets and read its CSVs."""

from __future__ import annotations

import csv
import importlib.util
import os
import pathlib
import subprocess
import sys
import types
from collections.abc import Callable

import pytest
import torch

# Budgets small enough for a test (a few seconds each on 2 CPU cores) that still go
# through every stage of the algorithms: exploration, model training, rollouts, SAC
# or planning, evaluation and logging.
TINY_MODEL = [
    "dynamics_model.hid_size=32",
    "dynamics_model.ensemble_size=3",
    "overrides.num_elites=2",
    "overrides.model_batch_size=64",
]
TINY_MBPO = TINY_MODEL + [
    "overrides.num_steps=200",
    "overrides.epoch_length=100",
    "overrides.freq_train_model=100",
    "algorithm.initial_exploration_steps=100",
    "overrides.effective_model_rollouts_per_step=10",
    "overrides.num_sac_updates_per_step=1",
    "overrides.sac_batch_size=32",
    "overrides.sac_hidden_size=32",
    "overrides.patience=1",
    "+overrides.num_epochs_train_model=2",
]
TINY_BOUND = TINY_MBPO + [
    "discriminator.batch_size=32",
    "discriminator.num_updates=10",
    "discriminator.hid_size=32",
]
TINY_PETS = TINY_MODEL + [
    "overrides.num_steps=120",
    "overrides.trial_length=60",
    "overrides.freq_train_model=60",
    "overrides.num_epochs_train_model=2",
    "overrides.planning_horizon=3",
    "overrides.cem_num_iters=1",
    "overrides.cem_population_size=20",
    "algorithm.num_particles=3",
]


@pytest.fixture
def run_cli(tmp_path: pathlib.Path) -> Callable[..., subprocess.CompletedProcess]:
    """Runs ``python -m mbrl_bound_plugin ARGS`` with ``root_dir`` in a temporary dir."""

    def run(*args: str, timeout: float = 600, root: bool = True) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "mbrl_bound_plugin", *args]
        if root:
            cmd += [f"root_dir={tmp_path / 'exp'}"]
        env = dict(os.environ, HYDRA_FULL_ERROR="0")
        # one thread per BLAS/OpenMP pool: tiny nets run fastest so, above all on a few
        # busy cores (a caller's own OMP_NUM_THREADS wins)
        env.setdefault("OMP_NUM_THREADS", "1")
        return subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
        )

    return run


@pytest.fixture
def refused_in_process(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Callable[..., str]:
    """Runs ``mbrl-bound ARGS``'s entry point in this process on input it must refuse.

    The command's checks run (``main``: mbrl present, then ``preflight``), in tmp_path,
    but Hydra can never start: input that gets past the checks fails the test instead of
    training. Checks exit code 2, one line on stderr and nothing written; returns the line.
    """
    from mbrl_bound_plugin.cli import main as cli

    def hydra_must_not_start(*args, **kwargs):
        raise AssertionError("the checks let the input through: Hydra would start the run")

    monkeypatch.setattr(cli, "hydra", types.SimpleNamespace(main=hydra_must_not_start))
    monkeypatch.chdir(tmp_path)

    def refuse(*args: str, root: bool = True) -> str:
        argv = [*args, f"root_dir={tmp_path / 'exp'}"] if root else list(args)
        capsys.readouterr()
        before = sorted(tmp_path.rglob("*"))
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("mbrl-bound: error: "), lines[0]
        assert sorted(tmp_path.rglob("*")) == before  # nothing written
        return lines[0]

    return refuse


@pytest.fixture
def results(tmp_path: pathlib.Path) -> Callable[[str], list[dict[str, str]]]:
    """Reads the single ``NAME.csv`` (e.g. ``results``) that a run wrote under tmp_path."""

    def read(name: str = "results") -> list[dict[str, str]]:
        files = sorted((tmp_path / "exp").rglob(f"{name}.csv"))
        assert len(files) == 1, f"expected one {name}.csv, found {files}"
        with open(files[0], newline="") as f:
            return list(csv.DictReader(f))

    return read


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small nets run fastest on one thread, and stay fast on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load_benchmark(name: str):
    """The module of ``benchmarks/<name>.py`` (a script, not part of the package).

    ``benchmarks/`` goes on ``sys.path``, as when the script runs, so that it can import
    the scripts beside it.
    """
    folder = pathlib.Path(__file__).parents[1] / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    path = folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
