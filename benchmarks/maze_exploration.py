"""Where the point-maze runs went: goal visits and wall crossings in their replay buffers.

    python benchmarks/maze_exploration.py exp/v2/point_maze          # every run below it
    python benchmarks/maze_exploration.py RUN_DIR [RUN_DIR ...]

Besides the buffer, each run's ``results.csv`` (one evaluation episode per epoch) gives
whether its last evaluation reached the goal (the success of a seed, as the maze's
calibration counts it: docs/maze.md), how many evaluations did, and the environment
step of the first that did; a last line per folder counts the successful seeds.

Reads each run's ``replay_buffer.npz`` (every real transition: initial exploration and
training episodes, as mbrl saves it) and prints, per run: transitions, episodes,
transitions inside the goal disc, episodes that reached the goal,
the share of transitions right of the wall, and the largest ``x`` reached. A run's
evaluation return only says whether its deterministic policy reaches the goal; this says
whether the goal was ever found at all, i.e. whether the model and the policy had any
goal transition to learn from.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from mbrl_bound_plugin.env import maze


def exploration(buffer_path: pathlib.Path) -> dict[str, float]:
    """Statistics of one run's replay buffer (see the module docstring).

    Args:
        buffer_path: a run's ``replay_buffer.npz``.

    Returns:
        ``transitions``, ``episodes``, ``goal_transitions``, ``goal_episodes``,
        ``right_of_wall`` (a share) and ``max_x``.
    """
    data = np.load(buffer_path)
    next_obs, rewards = data["next_obs"], data["reward"]
    x, y = next_obs[:, 0], next_obs[:, 1]
    inside = (x - maze.GOAL[0]) ** 2 + (y - maze.GOAL[1]) ** 2 <= maze.GOAL_RADIUS**2
    # a row starts an episode when the previous one ended it, or when it does not start
    # where the previous one arrived (the last exploration episode is cut short)
    ended = data["terminated"] | data["truncated"]
    starts = np.ones(len(rewards), dtype=bool)
    starts[1:] = ended[:-1] | np.any(data["obs"][1:] != next_obs[:-1], axis=1)
    episode_of = np.cumsum(starts) - 1
    episodes = int(episode_of[-1]) + 1 if len(rewards) else 0
    per_episode = np.zeros(episodes, dtype=bool)
    np.logical_or.at(per_episode, episode_of, inside)
    return {
        "transitions": len(rewards),
        "episodes": episodes,
        "goal_transitions": int(inside.sum()),
        "goal_episodes": int(per_episode.sum()),
        "right_of_wall": float((x > maze.WALL_X).mean()),
        "max_x": float(x.max()),
    }


# an evaluation episode that spent at least one step in the goal disc returns at least
# this much more than one that never did (MAX_EPISODE_STEPS * STEP_REWARD)
SUCCESS_MARGIN = (maze.GOAL_REWARD - maze.STEP_REWARD) / 2


def evaluations(results_path: pathlib.Path) -> dict[str, float]:
    """Which of a run's evaluation episodes reached the goal (its ``results.csv``).

    Args:
        results_path: a run's ``results.csv`` (``env_step``, ``episode_reward`` per epoch).

    Returns:
        ``evaluations``, ``successes`` (how many reached the goal), ``last_success``
        (1.0 or 0.0: the last one did) and ``first_success_step`` (the ``env_step`` of the
        first that did; NaN if none did).
    """
    rows = np.genfromtxt(results_path, delimiter=",", names=True, ndmin=1)
    floor = maze.MAX_EPISODE_STEPS * maze.STEP_REWARD + SUCCESS_MARGIN
    reached = rows["episode_reward"] > floor
    first = rows["env_step"][reached][0] if reached.any() else float("nan")
    return {
        "evaluations": len(rows),
        "successes": int(reached.sum()),
        "last_success": float(reached[-1]) if len(rows) else 0.0,
        "first_success_step": float(first),
    }


def main(argv: list[str] | None = None) -> int:
    """Prints one line per run found under the given folders."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=pathlib.Path)
    args = parser.parse_args(argv)
    buffers = sorted(p for f in args.folders for p in f.rglob("replay_buffer.npz"))
    if not buffers:
        print("no replay_buffer.npz under the given folders", file=sys.stderr)
        return 2
    print(
        "run | transitions | episodes | goal transitions | goal episodes | right of wall | "
        "max x | last eval reached | evals reached | first reached at step"
    )
    successful: dict[pathlib.Path, list[float]] = {}
    for path in buffers:
        s = exploration(path)
        line = (
            f"{path.parent} | {s['transitions']} | {s['episodes']} | {s['goal_transitions']} | "
            f"{s['goal_episodes']} | {s['right_of_wall']:.3f} | {s['max_x']:.2f}"
        )
        results = path.parent / "results.csv"
        if results.exists():
            e = evaluations(results)
            first = "-" if np.isnan(e["first_success_step"]) else f"{e['first_success_step']:.0f}"
            line += f" | {'yes' if e['last_success'] else 'no'} | "
            line += f"{e['successes']}/{e['evaluations']} | {first}"
            successful.setdefault(path.parent.parent, []).append(e["last_success"])
        print(line)
    for folder, seeds in successful.items():
        reached = int(sum(seeds))
        print(f"{folder}: {reached} of {len(seeds)} runs reached the goal at their last evaluation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
