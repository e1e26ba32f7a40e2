"""CPU time of the budgeted optimism's tilt per model step, against SAC's updates it serves.

``algorithm.optimism`` tilts every model sample of the rollouts (``docs/algorithm.md``,
"Budgeted optimism"): ``mean_shift`` takes one gradient of ``V`` per row (plus two passes
on 8192 rows for its value-gain diagnostic), ``resample`` evaluates ``V`` at ``K`` draws
per row. This script times :class:`BudgetedOptimism.sample` on one model step of a task's
rollouts (``effective_model_rollouts_per_step * freq_train_model`` rows, the mbrl
overrides' own numbers) with SAC's networks at the task's sizes, and times SAC's updates
between two model trainings (``num_sac_updates_per_step * freq_train_model`` updates of
``sac_batch_size`` rows), the largest shared cost of an MBPO epoch. Their ratio is what the
tilt adds to that part of an epoch, per step of the rollouts' horizon: at horizon 1
(InvertedPendulum's ``rollout_schedule``) the tilt's share of a whole MBPO epoch is
smaller still. The end-to-end ratio is ``benchmarks/overhead.py``'s (its "model step tilt"
component). Process CPU time, one thread unless ``--threads``:

    python benchmarks/optimism_cost.py [--task inv_pendulum|halfcheetah] [--repeats 3]
        [--rows N] [--sac-updates N] [--threads 1]

This is a benchmark (numbers printed), not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import hydra
import mbrl.planning
import mbrl.util.replay_buffer
import numpy as np
import torch

from mbrl_bound_plugin import compose
from mbrl_bound_plugin.env.factory import make_env
from mbrl_bound_plugin.models.optimism import BudgetedOptimism
from mbrl_bound_plugin.planning.sac_agent import BoundSACAgent

TASKS = {"inv_pendulum": "mbpo_inv_pendulum_v5", "halfcheetah": "mbpo_halfcheetah_v5"}
# the tilts timed, by their label in the table: (method, K); K is used by resample only
VARIANTS = {
    "mean_shift": ("mean_shift", 16),
    "resample K=4": ("resample", 4),
    "resample K=8": ("resample", 8),
    "resample K=16": ("resample", 16),
}
KL_BUDGET = 0.1


def cpu_seconds(fn, repeats: int) -> float:
    """Median process CPU time of ``fn()`` over ``repeats`` calls, after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def measure(task: str, repeats: int, rows: int | None, sac_updates: int | None) -> dict:
    """Seconds per model step of each variant and per model training's worth of SAC updates."""
    cfg = compose(["algorithm=bound", f"overrides={TASKS[task]}"])
    env, term_fn, _ = make_env(cfg)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    mbrl.planning.complete_agent_cfg(env, cfg.algorithm.agent)
    agent = BoundSACAgent(hydra.utils.instantiate(cfg.algorithm.agent))
    over = cfg.overrides
    rows = rows or over.effective_model_rollouts_per_step * over.freq_train_model
    sac_updates = sac_updates or over.num_sac_updates_per_step * over.freq_train_model
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(rows, obs_dim, generator=gen)
    act = torch.rand(rows, act_dim, generator=gen) * 2 - 1
    mean = 0.1 * torch.randn(rows, obs_dim + 1, generator=gen)  # (+ the reward output)
    logvar = torch.full((rows, obs_dim + 1), -6.0)

    def to_next_obs(pred: torch.Tensor) -> torch.Tensor:
        return obs + pred

    tilt_s = {}
    for label, (method, k) in VARIANTS.items():
        tilt = BudgetedOptimism(method, KL_BUDGET, k)
        tilt.set_value(agent.target_value, float(over.sac_gamma), term_fn)

        def step(tilt=tilt):
            with torch.no_grad():  # (as mbrl's ModelEnv.step)
                tilt.sample(mean, logvar, act, to_next_obs, obs_dim, gen)

        tilt_s[label] = cpu_seconds(step, repeats)

    buffer = mbrl.util.replay_buffer.ReplayBuffer(10_000, (obs_dim,), (act_dim,))
    rng = np.random.default_rng(0)
    for _ in range(2_000):
        buffer.add(
            rng.normal(size=obs_dim), rng.uniform(-1, 1, act_dim), rng.normal(size=obs_dim),
            1.0, False, False,
        )  # fmt: skip
    sac = agent.sac_agent
    batch = int(over.sac_batch_size)
    per_update = cpu_seconds(lambda: sac.update_parameters(buffer, batch, 0), repeats * 20)
    return {
        "task": task,
        "rows": rows,
        "sac_updates": sac_updates,
        "threads": torch.get_num_threads(),
        "sac_s": per_update * sac_updates,
        "tilt_s": tilt_s,
    }


def table(result: dict) -> str:
    """The measurement as a markdown table."""
    lines = [
        f"{result['task']}: one model step of {result['rows']} rows; SAC: "
        f"{result['sac_updates']} updates, {result['sac_s']:.2f} s; "
        f"{result['threads']} thread(s), process CPU time",
        "",
        "| tilt | s per model step | / SAC's updates per model training |",
        "|---|---:|---:|",
    ]
    for name, seconds in result["tilt_s"].items():
        lines.append(f"| {name} | {seconds:.2f} | {seconds / result['sac_s']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=list(TASKS), default="inv_pendulum")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, help="rows of a model step (default: the task's)")
    parser.add_argument("--sac-updates", type=int, help="SAC updates per model training")
    parser.add_argument("--threads", type=int, default=1, help="torch's CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = measure(args.task, args.repeats, args.rows, args.sac_updates)
    print(table(result))
    return result


if __name__ == "__main__":
    main()
