"""Where the point-maze runs went: goal visits and wall crossings in their replay buffers.

    python benchmarks/maze_exploration.py exp/v2/point_maze          # every run below it
    python benchmarks/maze_exploration.py RUN_DIR [RUN_DIR ...]

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


def main(argv: list[str] | None = None) -> int:
    """Prints one line per run found under the given folders."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=pathlib.Path)
    args = parser.parse_args(argv)
    buffers = sorted(p for f in args.folders for p in f.rglob("replay_buffer.npz"))
    if not buffers:
        print("no replay_buffer.npz under the given folders", file=sys.stderr)
        return 2
    print("run | transitions | episodes | goal transitions | goal episodes | right of wall | max x")
    for path in buffers:
        s = exploration(path)
        print(
            f"{path.parent} | {s['transitions']} | {s['episodes']} | {s['goal_transitions']} | "
            f"{s['goal_episodes']} | {s['right_of_wall']:.3f} | {s['max_x']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
