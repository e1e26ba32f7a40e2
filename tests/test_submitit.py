"""submitit for real, on this machine: ``hydra/launcher=mbrl_bound_submitit_local``.

submitit's local executor runs each job with the machinery it uses on SLURM, in local
processes: a time limit (``timeout_min``), USR2 ahead of it (30 s ahead: fixed for the
local executor), and a requeue when submitit's USR2 handler asks for one. These tests run
the ``mbrl-bound`` command through it: a two-run sweep that ``mbrl-bound-report`` reads,
and a bound run that outlasts its 1-minute limit, checkpoints on USR2 at the step the
signal arrives, is requeued and continues from exactly that checkpoint to the end.
"""

from __future__ import annotations

import csv
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest
from conftest import TINY_BOUND

from mbrl_bound_plugin import report
from mbrl_bound_plugin.report.cli import main as report_main
from mbrl_bound_plugin.util.checkpoint import list_checkpoints, load_checkpoint

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
pytestmark = pytest.mark.slow

COMMON = ["algorithm=bound", "overrides=mbpo_inv_pendulum_v5", "device=cpu", "resume=auto"]
EXPLORATION = 100  # algorithm.initial_exploration_steps in TINY_BOUND


def sweep(
    tmp_path: pathlib.Path, *overrides: str, timeout: float, exit_code: int = 0
) -> tuple[pathlib.Path, str, str, str]:
    """Runs ``mbrl-bound -m hydra/launcher=mbrl_bound_submitit_local OVERRIDES``.

    Args:
        tmp_path: where to run; the sweep directory is ``tmp_path/sweep``.
        overrides: Hydra overrides.
        timeout: seconds; past them, the command and every job are killed.
        exit_code: the command's expected exit code.

    Returns:
        The sweep directory, the jobs' stdout and stderr logs (all jobs, every attempt:
        submitit appends to a job's logs when it requeues it), and the command's output.
    """
    sweep_dir = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "mbrl_bound_plugin",
        "-m",
        "hydra/launcher=mbrl_bound_submitit_local",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    # one torch thread per run: the runs of a sweep start at once, on 2 cores
    env = dict(os.environ, HYDRA_FULL_ERROR="0", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # submitit's job controllers join this process group
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the command, the controllers and their jobs
        output, _ = proc.communicate()
        pytest.fail(f"the sweep did not end in {timeout} s:\n{output[-3000:]}")
    out, err = (
        "".join(p.read_text(errors="replace") for p in sorted(sweep_dir.glob(pattern)))
        for pattern in (".submitit/*/*_0_log.out", ".submitit/*/*_0_log.err")
    )
    assert proc.returncode == exit_code, f"{output[-2000:]}\n{out[-2000:]}\n{err[-2000:]}"
    return sweep_dir, out, err, output


def rows(run_dir: pathlib.Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_two_seed_sweep_runs_and_the_report_reads_it(tmp_path):
    sweep_dir, out, _, _ = sweep(tmp_path, *COMMON, *TINY_BOUND, "seed=0,1", timeout=180)
    assert out.count("mbrl-bound: results in") == 2
    runs = report.find_runs(sweep_dir)
    assert [(r.algorithm, r.seed, r.task) for r in runs] == [
        ("bound", 0, "InvertedPendulum-v5"),
        ("bound", 1, "InvertedPendulum-v5"),
    ]
    assert report_main([str(sweep_dir)]) == 0
    final = report.summarize_metrics(runs).loc[("InvertedPendulum-v5", "bound")]
    assert final["final_n"] == 2
    assert re.search(r"^\| bound +\| +2 \|", (sweep_dir / "report.md").read_text(), re.M)
    assert (sweep_dir / "bound_diagnostics.png").is_file()


STEPS, EPOCH = 2400, 200
EPOCH_ENDS = list(range(EPOCH, STEPS + 1, EPOCH))
SIGNAL_LINE = re.compile(r"mbrl-bound: SIGUSR2 at environment step (\d+); checkpoint (\S+) written")
RESUME_LINE = re.compile(r"mbrl-bound: resuming from (\S+) \(environment step (\d+)\)")
LONG_RUN = [
    *COMMON,
    *[o for o in TINY_BOUND if not o.startswith(("overrides.num_steps", "overrides.epoch_"))],
    f"overrides.num_steps={STEPS}",
    f"overrides.epoch_length={EPOCH}",
    "overrides.num_sac_updates_per_step=5",  # about 60 steps a second: 40 s in all
    f"+algorithm.dataset_size={EXPLORATION + STEPS}",
    "checkpoint.keep=100",  # keep them all, to see which were written
    "log_frequency_agent=1000",
    "seed=0",
    "hydra.launcher.timeout_min=1",  # USR2 30 s into each attempt
]
REQUEUES = "hydra.launcher.max_num_timeout=5"  # (6 attempts: a busy machine needs more)


def signals_and_resumes(log: str) -> list[int]:
    """The steps at which USR2 checkpointed, each checked against the next resume.

    Every ``SIGUSR2 at environment step N; checkpoint PATH written`` line must name
    ``step_N.ckpt``, and the next ``resuming from`` line, if any, must name that PATH.
    """
    steps = []
    for signalled in SIGNAL_LINE.finditer(log):
        step, path = int(signalled.group(1)), signalled.group(2)
        assert pathlib.Path(path).name == f"step_{step:09d}.ckpt"
        resumed = RESUME_LINE.search(log, signalled.end())
        assert resumed is None or resumed.groups() == (path, str(step)), log[-3000:]
        steps.append(step)
    return steps


def assert_one_whole_run(run_dir: pathlib.Path) -> None:
    """One contiguous run: every epoch once, the full step count, every transition."""
    results = rows(run_dir)
    assert [float(r["epoch"]) for r in results] == list(range(STEPS // EPOCH))
    assert [float(r["env_step"]) for r in results] == [s - 1.0 for s in EPOCH_ENDS]
    final = load_checkpoint(run_dir / "checkpoints" / f"step_{STEPS:09d}.ckpt")["run"]
    assert final["counters"]["env_steps"] == STEPS
    assert final["replay_buffer"]["num_stored"] == EXPLORATION + STEPS


def test_a_timed_out_job_checkpoints_on_usr2_is_requeued_and_resumes_from_that_step(tmp_path):
    sweep_dir, out, log, _ = sweep(tmp_path, *LONG_RUN, REQUEUES, timeout=300)
    run_dir = sweep_dir / "0"

    # each USR2 arrived in the loop: a checkpoint at that step, then submitit's handler
    signals = signals_and_resumes(log)
    assert signals, log[-3000:]
    assert log.index("Caught signal SIGUSR2") > log.index("SIGUSR2 at")  # checkpoint first
    assert out.count("Requeued job") >= len(signals)
    signal_steps = set(signals)
    written = {int(p.stem.split("_")[1]) for p in list_checkpoints(run_dir / "checkpoints")}
    assert written == set(EPOCH_ENDS) | signal_steps

    assert_one_whole_run(run_dir)


def test_out_of_requeues_the_checkpoint_is_kept_and_the_same_command_continues(tmp_path):
    # submitit's UncompletedJobError: it gives up after max_num_timeout requeues
    no_requeue = "hydra.launcher.max_num_timeout=0"
    sweep_dir, _, log, output = sweep(tmp_path, *LONG_RUN, no_requeue, timeout=300, exit_code=1)
    assert "UncompletedJobError: Job not requeued because: timed-out too many times" in output
    (step,) = signals_and_resumes(log)  # the USR2 still wrote its checkpoint
    run_dir = sweep_dir / "0"
    assert list_checkpoints(run_dir / "checkpoints")[-1].name == f"step_{step:09d}.ckpt"
    assert len(rows(run_dir)) == step // EPOCH

    _, _, log, _ = sweep(tmp_path, *LONG_RUN, REQUEUES, timeout=300)  # the same sweep again
    assert f"resuming from {run_dir}/checkpoints/step_{step:09d}.ckpt" in log
    assert_one_whole_run(run_dir)
