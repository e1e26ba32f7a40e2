"""Wall time per environment step of algorithm=bound against algorithm=mbpo.

Both run in this process on one identical configuration (same overrides, seed and
budget), alternating bound, mbpo, bound, mbpo, ... so that machine noise hits both
alike; prints each run's seconds per environment step and the median ratio.

    python benchmarks/overhead.py [--repeats 3] [--steps 1000] [HYDRA_OVERRIDE ...]

This is a benchmark (numbers printed), not a test.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import mbrl.algorithms.mbpo as mbpo
import numpy as np
import torch
from hydra import compose, initialize_config_dir

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import mbrl_bound_conf_dir
from mbrl_bound_plugin.algorithm import train as bound_train
from mbrl_bound_plugin.envs import make_env

# mbrl's MBPO InvertedPendulum settings with a budget that fits a benchmark.
DEFAULT = [
    "overrides=mbpo_inv_pendulum_v5",
    "device=cpu",
    "algorithm.initial_exploration_steps=250",
    "overrides.epoch_length=250",
]


def time_run(algorithm: str, overrides: list[str]) -> float:
    """Seconds per environment step of one run (training only, no process start-up)."""
    with initialize_config_dir(version_base="1.1", config_dir=str(mbrl_bound_conf_dir())):
        cfg = compose(config_name="main", overrides=[f"algorithm={algorithm}", *overrides])
    env, term_fn, _ = make_env(cfg)
    test_env, *_ = make_env(cfg)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    train = bound_train if algorithm == "bound" else mbpo.train
    with tempfile.TemporaryDirectory() as work_dir:
        start = time.perf_counter()
        train(env, test_env, term_fn, cfg, silent=True, work_dir=work_dir)
        elapsed = time.perf_counter() - start
    return elapsed / cfg.overrides.num_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    args, extra = parser.parse_known_args()
    overrides = DEFAULT + [f"overrides.num_steps={args.steps}", *extra]
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"# overrides: {' '.join(overrides)}")
    ratios = []
    for rep in range(args.repeats):
        bound_s = time_run("bound", overrides)
        mbpo_s = time_run("mbpo", overrides)
        ratios.append(bound_s / mbpo_s)
        print(
            f"repeat {rep}: bound {bound_s * 1e3:.1f} ms/step, mbpo {mbpo_s * 1e3:.1f} ms/step, "
            f"ratio {ratios[-1]:.3f}"
        )
    print(f"median ratio bound/mbpo over {args.repeats} repeats: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
