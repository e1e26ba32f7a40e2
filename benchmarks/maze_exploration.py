"""Where the point-maze runs went: goal visits and wall crossings in their replay buffers.

    python benchmarks/maze_exploration.py exp/v2/point_maze          # every run below it
    python benchmarks/maze_exploration.py RUN_DIR [RUN_DIR ...]
    python benchmarks/maze_exploration.py --paired ARM_A ARM_B   # same seeds, two arms

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

``--paired A B`` pairs the runs under two folders by seed (as ``mbrl-bound-report`` finds
and reads them) and compares the successful seeds: the pairs where exactly one
arm succeeded (discordant) decide an exact two-sided sign test (McNemar's exact test),
and the evaluations reaching the goal are summed per arm.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
import scipy.stats

from mbrl_bound_plugin.env import maze
from mbrl_bound_plugin.errors import ReportError
from mbrl_bound_plugin.report.metrics import SUCCESS_THRESHOLDS, is_success
from mbrl_bound_plugin.report.runs import RETURN_COL, STEP_COL, find_runs


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


def evaluations(results_path: pathlib.Path) -> dict[str, float]:
    """Which of a run's evaluation episodes reached the goal (its ``results.csv``).

    Args:
        results_path: a run's ``results.csv`` (``env_step``, ``episode_reward`` per epoch).

    Returns:
        As :func:`scored_evaluations`.
    """
    rows = np.genfromtxt(results_path, delimiter=",", names=True, ndmin=1)
    return scored_evaluations(rows["env_step"], rows["episode_reward"])


def scored_evaluations(steps: np.ndarray, returns: np.ndarray) -> dict[str, float]:
    """Which of a run's evaluation episodes (their ``env_step`` and ``episode_reward``)
    reached the goal.

    Returns:
        ``evaluations``, ``successes`` (how many reached the goal), ``last_success``
        (1.0 or 0.0: the last one did) and ``first_success_step`` (the ``env_step`` of the
        first that did; NaN if none did).
    """
    steps, returns = np.asarray(steps), np.asarray(returns)
    # (the report's threshold: between an episode never in the goal disc and one in it once)
    reached = is_success(returns, SUCCESS_THRESHOLDS[maze.ENV_ID])
    first = steps[reached][0] if reached.any() else float("nan")
    return {
        "evaluations": len(returns),
        "successes": int(reached.sum()),
        "last_success": float(reached[-1]) if len(returns) else 0.0,
        "first_success_step": float(first),
    }


def paired(arm_a: pathlib.Path, arm_b: pathlib.Path) -> dict:
    """Successful seeds of two arms on the seeds both ran (see the module docstring).

    Returns:
        ``seeds`` (sorted), ``last_a`` / ``last_b`` (per seed, 1.0 when the last
        evaluation reached the goal), ``only_a`` / ``only_b`` (discordant pairs),
        ``p_value`` (exact two-sided sign test on them; 1.0 without any),
        ``reached_a`` / ``reached_b`` and ``evaluations_a`` / ``evaluations_b`` (summed).

    Raises:
        ReportError: an arm's folder holds no usable run (:func:`find_runs`).
    """
    runs_a, runs_b = ({run.seed: run.results for run in find_runs(arm)} for arm in (arm_a, arm_b))
    seeds = sorted(set(runs_a) & set(runs_b))
    out: dict = {"seeds": seeds}
    for key, runs in (("a", runs_a), ("b", runs_b)):
        # (find_runs has read each results.csv already)
        evals = [scored_evaluations(runs[seed][STEP_COL], runs[seed][RETURN_COL]) for seed in seeds]
        out[f"last_{key}"] = [e["last_success"] for e in evals]
        out[f"reached_{key}"] = sum(e["successes"] for e in evals)
        out[f"evaluations_{key}"] = sum(e["evaluations"] for e in evals)
    pairs = list(zip(out["last_a"], out["last_b"], strict=True))
    out["only_a"] = sum(a > b for a, b in pairs)
    out["only_b"] = sum(b > a for a, b in pairs)
    discordant = out["only_a"] + out["only_b"]
    out["p_value"] = (
        scipy.stats.binomtest(out["only_a"], discordant, 0.5).pvalue if discordant else 1.0
    )
    return out


def print_paired(arm_a: pathlib.Path, arm_b: pathlib.Path) -> int:
    """Prints :func:`paired` per seed and in total; 2 when the arms share no seed."""
    try:
        result = paired(arm_a, arm_b)
    except ReportError as e:
        print(e, file=sys.stderr)
        return 2
    if not result["seeds"]:
        print(f"no seed with a run under both {arm_a} and {arm_b}", file=sys.stderr)
        return 2
    print(f"seed | last eval reached: {arm_a} | {arm_b}")
    for seed, a, b in zip(result["seeds"], result["last_a"], result["last_b"], strict=True):
        print(f"{seed} | {'yes' if a else 'no'} | {'yes' if b else 'no'}")
    n = len(result["seeds"])
    print(
        f"successful seeds: {sum(result['last_a']):.0f} of {n} | {sum(result['last_b']):.0f} "
        f"of {n}; discordant pairs: {result['only_a']} for {arm_a}, {result['only_b']} for "
        f"{arm_b}; exact sign test p = {result['p_value']:.3g}"
    )
    print(
        f"evaluations reaching the goal: {result['reached_a']} of {result['evaluations_a']} | "
        f"{result['reached_b']} of {result['evaluations_b']}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Prints one line per run found under the given folders (or ``--paired``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=pathlib.Path)
    parser.add_argument("--paired", nargs=2, type=pathlib.Path, metavar=("ARM_A", "ARM_B"))
    args = parser.parse_args(argv)
    if args.paired:
        return print_paired(*args.paired)
    if not args.folders:
        parser.error("give run folders, or --paired ARM_A ARM_B")
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
