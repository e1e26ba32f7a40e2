"""A small ``algorithm=bound`` run from Python, as a user of mbrl-lib would write it.

    python examples/quickstart.py [OUT_DIR]

Composes the configuration the ``mbrl-bound`` command would run (here mbrl's MBPO
settings for InvertedPendulum-v5, with a budget and networks small enough for a laptop
CPU: about a minute), builds the environment, trains, and prints ``results.csv``.
"""

from __future__ import annotations

import pathlib
import sys

import pandas as pd

import mbrl_bound_plugin as mbb

SMALL = [
    "resume=auto",  # a second run of this script continues (or reuses) the first
    "overrides.num_steps=1000",
    "algorithm.initial_exploration_steps=250",
    "dynamics_model.hid_size=64",
    "+overrides.num_epochs_train_model=20",
    "overrides.effective_model_rollouts_per_step=40",
    "overrides.num_sac_updates_per_step=2",
    "overrides.sac_hidden_size=64",
]


def main(out_dir: str = "exp/quickstart") -> pd.DataFrame:
    """Trains bound on InvertedPendulum-v5 for 1000 steps; returns its ``results.csv``."""
    cfg = mbb.compose(["algorithm=bound", "overrides=mbpo_inv_pendulum_v5", *SMALL])
    env, term_fn, reward_fn = mbb.make_env(cfg)  # as mbrl's EnvHandler.make_env
    test_env, *_ = mbb.make_env(cfg)
    best = mbb.train(env, test_env, term_fn, cfg, work_dir=out_dir)
    results = pd.read_csv(pathlib.Path(out_dir) / "results.csv")
    print(results[["env_step", "episode_reward", "disc_accuracy", "kl_estimate"]])
    print(f"best evaluation return: {best:.1f} (device {cfg.device}; files in {out_dir})")
    return results


if __name__ == "__main__":
    main(*sys.argv[1:2])
