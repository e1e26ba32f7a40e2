"""Shared fixtures: run the ``mbrl-bound`` command on tiny budgets and read its CSVs."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import os
import pathlib
import subprocess
import sys
import types
from collections.abc import Callable, Sequence

import pytest
import torch
import yaml

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


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs a worker per core), each worker trains on one
    thread: workers with a pool of threads each would contend for the same cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def one_thread_env(**extra: str) -> dict[str, str]:
    """The environment for a test's subprocess: this one's, with ``extra``, and one
    thread per BLAS/OpenMP pool unless OMP_NUM_THREADS is set (tiny nets run fastest so,
    above all on a few busy cores)."""
    env = dict(os.environ, **extra)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_command(
    args: Sequence[str], cwd: pathlib.Path, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Runs ``python -m mbrl_bound_plugin ARGS`` in ``cwd``; its output is captured."""
    return subprocess.run(
        [sys.executable, "-m", "mbrl_bound_plugin", *args],
        cwd=cwd,
        env=one_thread_env(HYDRA_FULL_ERROR="0"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def run_cli(tmp_path: pathlib.Path) -> Callable[..., subprocess.CompletedProcess]:
    """Runs ``python -m mbrl_bound_plugin ARGS`` with ``root_dir`` in a temporary dir."""

    def run(*args: str, timeout: float = 600, root: bool = True) -> subprocess.CompletedProcess:
        extra = [f"root_dir={tmp_path / 'exp'}"] if root else []
        return run_command([*args, *extra], tmp_path, timeout)

    return run


def read_csv(path: pathlib.Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@dataclasses.dataclass
class Sweep:
    """One ``mbrl-bound -m`` command and what its jobs wrote.

    Attributes:
        proc: the finished command.
        results: each job's ``results.csv`` rows, by the job's value of the swept key.
    """

    proc: subprocess.CompletedProcess
    results: dict[str, list[dict[str, str]]]

    def rows(self, value: str) -> list[dict[str, str]]:
        """The job's rows; fails with the command's output if the sweep failed."""
        assert self.proc.returncode == 0, self.proc.stderr[-3000:]
        assert value in self.results, f"no results.csv for {value}: {sorted(self.results)}"
        return self.results[value]


def run_sweep(folder: pathlib.Path, swept: str, *args: str) -> Sweep:
    """Runs ``mbrl-bound -m ARGS`` in ``folder``; reads each job's results by ``swept``."""
    sweep_dir = folder / "sweep"
    proc = run_command(["-m", *args, f"hydra.sweep.dir={sweep_dir}"], folder)
    results = {}
    for path in sorted(sweep_dir.rglob("results.csv")):
        overrides = yaml.safe_load((path.parent / ".hydra" / "overrides.yaml").read_text())
        value = dict(o.split("=", 1) for o in overrides)[swept]
        assert value not in results, f"two jobs with {swept}={value}"
        results[value] = read_csv(path)
    return Sweep(proc, results)


# The tasks that mbrl's own algorithms train on through the command, each algorithm in
# one sweep, shared by every test that needs such a run (a process, not a run, per test
# costs seconds of imports each). The MBPO sweep is written in Hydra's quoted and
# choice() syntax, which it also tests. Its overrides.* keys are given as ++KEY=VALUE:
# Hydra first composes the sweep's own configuration, with main.yaml's default
# overrides (pets_cartpole), which lacks MBPO's keys.
MBPO_TASKS = ["mbpo_inv_pendulum", "mbpo_hopper", "mbpo_halfcheetah_v5", "mbpo_mountain_car"]
PETS_TASKS = [
    "pets_cartpole",
    "pets_inv_pendulum",
    "pets_mountain_car",
    "pets_halfcheetah_v5",
    "pets_point_maze",
]


@pytest.fixture(scope="session")
def mbpo_sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """mbrl's MBPO on every task of MBPO_TASKS (TINY_MBPO), in one ``-m`` command."""
    return run_sweep(
        tmp_path_factory.mktemp("mbpo_sweep"),
        "overrides",
        "algorithm='mbpo'",
        f"overrides=choice({','.join(MBPO_TASKS)})",
        *[
            "++" + o.lstrip("+") if o.startswith(("overrides.", "+overrides.")) else o
            for o in TINY_MBPO
        ],
    )


@pytest.fixture(scope="session")
def pets_sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """mbrl's PETS on every task of PETS_TASKS (TINY_PETS), in one ``-m`` command."""
    return run_sweep(
        tmp_path_factory.mktemp("pets_sweep"),
        "overrides",
        "algorithm=pets",
        f"overrides={','.join(PETS_TASKS)}",
        *TINY_PETS,
    )


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
        return read_csv(files[0])

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
