"""Size and wall time of one algorithm=bound checkpoint, by replay-buffer size.

Measures exactly what ``train`` writes: ``Checkpointer.save(run.state_dict(), ...)`` of a
``BoundRun`` built from the shipped ``mbpo_halfcheetah_v5`` settings (HalfCheetah-v5, obs
17, action 6; 7-member ensemble of 4 x 200 units; SAC with 512 units; the default
discriminator), in the state of a run at an epoch end:

- the replay buffer holds ``N`` transitions (random numbers of the right shapes);
- SAC's rollout buffer is full, at the capacity MBPO gives it in the first epoch
  (rollout length x rollouts per step x model trainings per epoch: 400,000 here);
- every Adam optimizer (model, discriminator, SAC's three) has its moment estimates;
- the CSV logs, counters and random streams are whatever the fresh run has.

Prints, per ``N``, the file size, the seconds to write it (state dict, serialize,
digest, fsync, rename) and to read it back into a fresh run of the same configuration
(read, check the digest, unpickle, ``load_state_dict``).

    python benchmarks/checkpoint.py [--rows 10000 100000 400000] [--dir DIR]

This is a benchmark (numbers printed), not a test.
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import subprocess
import tempfile
import time

import mbrl.algorithms.mbpo as mbpo
import numpy as np
import torch

import mbrl_bound_plugin as mbb
from mbrl_bound_plugin.util.checkpoint import Checkpointer, load_checkpoint


def _fill(buffer, rows: int, rng: np.random.Generator) -> None:
    obs_dim, act_dim = buffer.obs.shape[1], buffer.action.shape[1]
    buffer.add_batch(
        rng.normal(size=(rows, obs_dim)).astype(np.float32),
        rng.normal(size=(rows, act_dim)).astype(np.float32),
        rng.normal(size=(rows, obs_dim)).astype(np.float32),
        rng.normal(size=rows).astype(np.float32),
        np.zeros(rows, bool),
        np.zeros(rows, bool),
    )


def _with_moments(optimizer: torch.optim.Optimizer) -> None:
    """One zero-gradient step, so that Adam holds its moment estimates (as after training)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad()


def build_run(rows: int, work_dir: pathlib.Path, filled: bool = True) -> tuple[mbb.BoundRun, tuple]:
    """A HalfCheetah bound run with room for ``rows`` real transitions.

    With ``filled``, it is in the state of an epoch end (buffers full, optimizers used);
    without, it is freshly built (what a resumed run loads a checkpoint into).
    """
    cfg = mbb.compose(
        [
            "algorithm=bound",
            "overrides=mbpo_halfcheetah_v5",
            "device=cpu",
            f"+algorithm.dataset_size={rows}",
        ]
    )
    env, term_fn, _ = mbb.make_env(cfg)
    test_env, *_ = mbb.make_env(cfg)
    run = mbb.BoundRun(env, test_env, term_fn, cfg, str(work_dir), silent=True)
    if not filled:
        return run, (cfg, env)
    rng = np.random.default_rng(0)
    _fill(run.replay_buffer, rows, rng)
    o = cfg.overrides
    trains_per_epoch = int(np.ceil(o.epoch_length / o.freq_train_model))
    capacity = int(o.rollout_schedule[2]) * o.effective_model_rollouts_per_step
    capacity *= cfg.algorithm.freq_train_model * trains_per_epoch
    capacity *= o.num_epochs_to_retain_sac_buffer
    run.sac_buffer = run.scored_sac_buffer(  # (with its logits, as train keeps it)
        mbpo.maybe_replace_sac_buffer(None, run.obs_shape, run.act_shape, capacity, cfg.seed)
    )
    _fill(run.sac_buffer, capacity, rng)
    sac = run.agent.sac_agent
    for optimizer in (
        run.model_trainer.optimizer,
        run.discriminator.optimizer,
        sac.policy_optim,
        sac.critic_optim,
        sac.alpha_optim,
    ):
        _with_moments(optimizer)
    run.env_steps, run.epoch = 1000, 1
    return run, (cfg, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 400_000])
    parser.add_argument("--dir", type=pathlib.Path, default=None, help="where to write")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"# commit {commit or '?'}, {platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print("| transitions | SAC buffer rows | file MB | write s | read s |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for rows in args.rows:
            work_dir = pathlib.Path(tmp) / f"run{rows}"
            run, (cfg, env) = build_run(rows, work_dir)
            checkpointer = Checkpointer(work_dir, cfg, env)
            start = time.perf_counter()
            path = checkpointer.save(run.state_dict(), run.env_steps)
            written = time.perf_counter() - start
            sac_rows = run.sac_buffer.num_stored
            del run
            fresh, _ = build_run(rows, pathlib.Path(tmp) / "fresh", filled=False)
            start = time.perf_counter()
            fresh.load_state_dict(load_checkpoint(path)["run"])
            read = time.perf_counter() - start
            assert fresh.replay_buffer.num_stored == rows and fresh.env_steps == 1000
            size = path.stat().st_size / 2**20
            print(f"| {rows} | {sac_rows} | {size:.1f} | {written:.2f} | {read:.2f} |", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
