"""The noisy point maze: env API, walls, noise, rewards, termination, configs and a run."""

from __future__ import annotations

import csv
import importlib.util
import math
import pathlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY_BOUND
from gymnasium.utils.env_checker import check_env
from omegaconf import OmegaConf

import mbrl_bound_plugin as mbb
from mbrl_bound_plugin.env import maze
from mbrl_bound_plugin.env.maze import (
    ENV_ID,
    GAP_LOW,
    GOAL,
    GOAL_RADIUS,
    MAX_EPISODE_STEPS,
    MAX_STEP,
    NOISE_STD,
    START,
    START_JITTER,
    PointMazeEnv,
    move,
    point_maze,
    point_maze_reward,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
OVERRIDES = REPO / "conf" / "overrides"
BOUND_MODE = ["algorithm.bound_agent.mode=bound", "algorithm.bound_agent.reward_floor=0"]

maze.register()


def _toward(pos: np.ndarray, target: tuple[float, float]) -> np.ndarray:
    """The action heading for ``target`` at full speed (clipped per coordinate)."""
    return np.clip((np.asarray(target) - pos) / MAX_STEP, -1.0, 1.0).astype(np.float32)


def straight_policy(obs: np.ndarray) -> np.ndarray:
    """Straight at the goal, ignoring the wall."""
    return _toward(obs, GOAL)


def around_policy(obs: np.ndarray) -> np.ndarray:
    """Up to the gap on the left of the wall, through it, then to the goal's center."""
    x, y = obs
    if x < 0 and y < GAP_LOW + 0.15:
        return _toward(obs, (-0.15, GAP_LOW + 0.25))
    if x < 0.1:
        return _toward(obs, (0.3, GAP_LOW + 0.25))
    return _toward(obs, GOAL)


def _episode(env: gym.Env, policy, seed: int) -> tuple[list, list, list, list, dict]:
    """Runs one episode; returns actions, next observations, rewards, terminated, last info."""
    obs, info = env.reset(seed=seed)
    acts, next_obs, rewards, terms = [], [], [], []
    done = False
    while not done:
        act = policy(obs)
        obs, reward, terminated, truncated, info = env.step(act)
        acts.append(act)
        next_obs.append(obs)
        rewards.append(reward)
        terms.append(terminated)
        done = terminated or truncated
    return acts, next_obs, rewards, terms, info


def _random_policy(seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1, 1, size=2).astype(np.float32)


# ----------------------------------------------------------------------------- env API


@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
@pytest.mark.parametrize("env_id", [ENV_ID, maze.ENV_ID_V1])
def test_gymnasium_env_checker_passes_without_warnings(render_mode, env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # gymnasium tells whoever makes v0 that v1 exists; nothing else may warn
        warnings.filterwarnings("ignore", message=r".*PointMaze-v0 is out of date.*v1")
        check_env(gym.make(env_id, render_mode=render_mode).unwrapped)


def test_render_draws_wall_goal_and_point():
    env = PointMazeEnv(render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (100, 100, 3) and img.dtype == np.uint8
    colors = {tuple(c) for c in img.reshape(-1, 3)}
    assert {(0, 0, 0), (60, 180, 75), (220, 30, 30), (255, 255, 255)} <= colors
    assert PointMazeEnv().render() is None


def test_register_is_idempotent_and_sets_the_time_limit():
    maze.register()
    maze.register()
    assert gym.spec(ENV_ID).max_episode_steps == MAX_EPISODE_STEPS
    env = gym.make(ENV_ID)
    _, _, rewards, terms, _ = _episode(env, _random_policy(0), seed=0)
    assert len(rewards) == MAX_EPISODE_STEPS and not any(terms)


def test_reset_starts_near_start_and_is_reproducible_under_a_seed():
    actions = np.random.default_rng(0).uniform(-1, 1, size=(60, 2)).astype(np.float32)

    def trajectory(seed: int) -> np.ndarray:
        env = gym.make(ENV_ID)
        obs, info = env.reset(seed=seed)
        assert np.all(np.abs(obs - np.array(START)) <= START_JITTER + 1e-6)
        assert info == {"success": False, "in_goal": False}
        return np.array([obs] + [env.step(a)[0] for a in actions])

    first, again, other = trajectory(5), trajectory(5), trajectory(6)
    assert first.dtype == np.float32 and first.shape == (61, 2)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first[1:], other[1:])


# ----------------------------------------------------------------------------- walls


@pytest.mark.parametrize(
    "start, displacement, end",
    [
        ((-0.05, 0.0), (0.1, 0.0), (-0.05, 0.0)),  # straight into the wall: blocked
        ((-0.05, 0.0), (0.1, 0.02), (-0.05, 0.02)),  # blocked, slides along it
        ((0.05, 0.0), (-0.1, 0.0), (0.05, 0.0)),  # from the right side too
        ((-0.05, 0.7), (0.1, 0.0), (0.05, 0.7)),  # through the gap
        ((-0.05, 0.4), (0.1, 0.1), (-0.05, 0.5)),  # crosses at y = 0.45: blocked
        ((-0.1, 0.35), (0.2, 0.2), (-0.1, 0.55)),  # ends above the gap, crosses below it
        ((-0.05, 0.5), (0.1, 0.1), (0.05, 0.6)),  # crosses at y = 0.55: passes
        ((0.95, 0.95), (0.1, 0.1), (1.0, 1.0)),  # the arena's border clips
        ((-0.95, -0.95), (-0.1, 0.02), (-1.0, -0.93)),
    ],
)
def test_move_applies_the_wall_and_the_border(start, displacement, end):
    assert move(*start, *displacement) == pytest.approx(end, abs=1e-12)


def test_no_step_of_a_random_walk_crosses_the_wall_below_the_gap():
    env = PointMazeEnv()
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    crossings = 0
    for _ in range(20000):
        x, y = env.position
        nx, ny = env.step(rng.uniform(-1, 1, size=2))[0]
        if (x < 0) != (nx < 0):
            crossings += 1
            assert max(y, ny) >= GAP_LOW, ((x, y), (nx, ny))
    assert crossings > 0  # the walk does pass through the gap


@pytest.mark.parametrize("seed", range(5))
def test_going_straight_at_the_goal_never_reaches_it(seed):
    _, next_obs, rewards, _, info = _episode(gym.make(ENV_ID), straight_policy, seed)
    assert len(rewards) == MAX_EPISODE_STEPS
    assert not info["success"] and max(rewards) < 1.0
    assert next_obs[-1][0] < 0  # stuck on the left of the wall


@pytest.mark.parametrize("seed", range(5))
def test_going_around_the_wall_reaches_the_goal_and_stays(seed):
    _, next_obs, rewards, _, info = _episode(gym.make(ENV_ID), around_policy, seed)
    assert info["success"]
    first = rewards.index(1.0)
    assert first < 40
    assert sum(rewards) > 100  # it stays inside: 1.0 per step there
    dist = np.linalg.norm(np.array(next_obs[first:]) - np.array(GOAL), axis=1)
    assert np.all(dist <= GOAL_RADIUS + 1e-6)


# ----------------------------------------------------------------------------- noise


def test_the_dynamics_are_noisy_with_the_configured_std():
    env = PointMazeEnv()
    env.reset(seed=0)
    start = np.array([-0.5, -0.5])  # open space: no wall or border within reach
    act = np.array([0.5, -0.25], dtype=np.float32)
    steps = []
    for _ in range(4000):
        env.position = start
        steps.append(env.step(act)[0] - start)
    steps = np.array(steps)
    assert not np.array_equal(steps[0], steps[1])
    np.testing.assert_allclose(steps.mean(axis=0), MAX_STEP * act, atol=0.003)
    np.testing.assert_allclose(steps.std(axis=0), [NOISE_STD, NOISE_STD], rtol=0.06)
    assert abs(np.corrcoef(steps.T)[0, 1]) < 0.1
    # well above the variance floor of mbrl's GaussianMLP (log-variance >= -10)
    assert NOISE_STD >= 4 * math.exp(-5)


def test_zero_noise_is_deterministic():
    env = PointMazeEnv(noise_std=0.0)
    env.reset(seed=0)
    env.position = np.array([-0.5, -0.5])
    obs = env.step(np.array([0.5, -0.25], dtype=np.float32))[0]
    np.testing.assert_allclose(obs, [-0.45, -0.525], atol=1e-6)
    with pytest.raises(ValueError, match="noise_std"):
        PointMazeEnv(noise_std=-0.1)
    with pytest.raises(ValueError, match="outside the arena"):
        env.position = np.array([1.5, 0.0])


# ----------------------------------------------------------------------------- rewards, termination


def _transitions() -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """Actions, next observations, rewards and terminated flags of random and solving runs."""
    env = gym.make(ENV_ID)
    acts, next_obs, rewards, terms = [], [], [], []
    for seed in range(4):
        for policy in (_random_policy(seed), around_policy):
            a, o, r, t, _ = _episode(env, policy, seed)
            acts += a
            next_obs += o
            rewards += r
            terms += t
    return (
        torch.tensor(np.array(acts)),
        torch.tensor(np.array(next_obs)),
        np.array(rewards),
        np.array(terms),
    )


def test_every_reward_is_positive_and_the_reward_function_agrees():
    acts, next_obs, rewards, _ = _transitions()
    assert np.all(rewards > 0)  # mode `bound` works with reward_floor = 0
    assert set(rewards.tolist()) == {0.01, 1.0}
    inside = np.linalg.norm(next_obs.numpy() - np.array(GOAL), axis=1) <= GOAL_RADIUS
    np.testing.assert_array_equal(rewards == 1.0, inside)
    ours = point_maze_reward(acts, next_obs)
    assert ours.shape == (len(rewards), 1) and ours.dtype == next_obs.dtype
    np.testing.assert_allclose(ours[:, 0].numpy(), rewards, rtol=1e-6)


def test_termination_function_agrees_with_the_env():
    acts, next_obs, rewards, terms = _transitions()
    assert (rewards == 1.0).any()  # goal states are among those checked
    done = point_maze(acts, next_obs)
    assert done.shape == (len(terms), 1) and done.dtype == torch.bool
    np.testing.assert_array_equal(done[:, 0].numpy(), terms)


# ----------------------------------------------------------------------------- configs and runs


@pytest.mark.parametrize(
    "ours, reference",
    [("mbpo_point_maze", "mbpo_mountain_car"), ("pets_point_maze", "pets_mountain_car")],
)
def test_overrides_have_the_keys_of_their_reference(ours, reference):
    mine = OmegaConf.load(OVERRIDES / f"{ours}.yaml")
    theirs = OmegaConf.load(OVERRIDES / f"{reference}.yaml")
    assert set(mine) == set(theirs)
    assert mine.env == f"gym___{ENV_ID}" and mine.term_fn == "mbrl_bound_plugin.env.maze.point_maze"


@pytest.mark.parametrize(
    "overrides",
    [
        ["algorithm=mbpo", "overrides=mbpo_point_maze"],
        ["algorithm=bound", "overrides=mbpo_point_maze", *BOUND_MODE],
        ["algorithm=pets", "overrides=pets_point_maze"],
    ],
)
def test_configs_compose_and_make_the_maze(overrides):
    cfg = mbb.compose(overrides)
    env, term_fn, reward_fn = mbb.make_env(cfg)
    assert term_fn is point_maze and reward_fn is None  # rewards are learned
    assert isinstance(env.unwrapped, PointMazeEnv)
    assert env.spec.max_episode_steps == MAX_EPISODE_STEPS
    assert env.observation_space.shape == (2,) and env.action_space.shape == (2,)
    if cfg.algorithm.name == "pets":
        # PETS explores randomly for trial_length steps: one whole episode
        assert cfg.overrides.trial_length == MAX_EPISODE_STEPS
        assert cfg.algorithm.initial_exploration_steps == MAX_EPISODE_STEPS


@pytest.mark.slow
def test_a_tiny_bound_run_in_bound_mode_with_reward_floor_zero(tmp_path, one_torch_thread):
    cfg = mbb.compose(["algorithm=bound", "overrides=mbpo_point_maze", *TINY_BOUND, *BOUND_MODE])
    env, term_fn, _ = mbb.make_env(cfg)
    test_env, *_ = mbb.make_env(cfg)
    best = mbb.train(env, test_env, term_fn, cfg, silent=True, work_dir=str(tmp_path))
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["env_step"]) for r in rows] == [99.0, 199.0]
    returns = [float(r["episode_reward"]) for r in rows]
    # one 150-step evaluation episode, every reward in [0.01, 1]
    assert all(0.01 * MAX_EPISODE_STEPS - 1e-6 <= g <= MAX_EPISODE_STEPS for g in returns)
    assert best == pytest.approx(max(returns))
    assert all(math.isfinite(float(r["bound_reward"])) for r in rows)


def test_importing_envs_registers_the_maze(monkeypatch):
    """The factory module's own code registers the maze (run afresh, beside the loaded one)."""
    from mbrl_bound_plugin.env import factory

    monkeypatch.delitem(gym.registry, ENV_ID)
    spec = importlib.util.spec_from_file_location("fresh_factory", factory.__file__)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert ENV_ID in gym.registry


@pytest.mark.slow
def test_the_command_runs_pets_on_the_maze(pets_sweep):
    """The maze's job in conftest's PETS sweep (TINY_PETS, through the command)."""
    rows = pets_sweep.rows("pets_point_maze")
    # the maze never terminates: one episode, cut at the time limit
    assert [float(r["env_step"]) for r in rows] == [float(MAX_EPISODE_STEPS)]
    assert float(rows[0]["episode_reward"]) >= 0.01 * MAX_EPISODE_STEPS - 1e-6


def test_maze_exploration_counts_episodes_and_goal_visits(tmp_path):
    """benchmarks/maze_exploration.py: episodes split where a run's buffer shows them
    (time limits, and a cut-short exploration episode), goal visits counted per episode."""
    import mbrl.util
    from conftest import load_benchmark

    module = load_benchmark("maze_exploration")
    buffer = mbrl.util.ReplayBuffer(500, (2,), (2,))
    start, goal = np.array(maze.START), np.array(maze.GOAL)
    # episode 1: 150 steps, time limit; episode 2: cut after 50 steps (end of
    # exploration); episode 3: 150 steps, in the goal at steps 10 and 11
    for length, goal_steps, truncated_at_end in (
        (150, (), True),
        (50, (), False),
        (150, (10, 11), True),
    ):
        pos = start.copy()
        for t in range(length):
            nxt = goal.copy() if t in goal_steps else start + 0.001 * (t + 1)
            buffer.add(pos, np.zeros(2), nxt, 0.01, False, truncated_at_end and t == length - 1)
            pos = nxt
    buffer.save(tmp_path)
    stats = module.exploration(tmp_path / "replay_buffer.npz")
    assert stats["transitions"] == 350 and stats["episodes"] == 3
    assert stats["goal_transitions"] == 2 and stats["goal_episodes"] == 1
    assert stats["right_of_wall"] == pytest.approx(2 / 350)


def test_maze_exploration_reads_which_evaluations_reached_the_goal(tmp_path, capsys):
    """A seed succeeds when its last evaluation reached the goal; the first success's step
    and the count of successful evaluations come from results.csv."""
    from conftest import load_benchmark

    module = load_benchmark("maze_exploration")
    never = 0.01 * MAX_EPISODE_STEPS  # 1.5: no step in the goal
    once = never - 0.01 + 1.0  # one step in the goal
    path = tmp_path / "results.csv"
    path.write_text(
        f"env_step,episode_reward\n299,{never}\n599,{once}\n899,{never}\n1199,{never + 30}\n"
    )
    assert module.evaluations(path) == {
        "evaluations": 4,
        "successes": 2,
        "last_success": 1.0,
        "first_success_step": 599.0,
    }
    path.write_text(f"env_step,episode_reward\n299,{never}\n599,{never + 1e-9}\n")
    e = module.evaluations(path)
    assert e["successes"] == 0 and e["last_success"] == 0.0 and math.isnan(e["first_success_step"])


def test_maze_exploration_pairs_two_arms_by_seed_and_tests_the_discordant_pairs(tmp_path, capsys):
    from conftest import load_benchmark

    module = load_benchmark("maze_exploration")
    never = 0.01 * MAX_EPISODE_STEPS
    reached = never + 30

    def run(arm: str, folder: str, seed: int, last: float, first: float = never) -> None:
        path = tmp_path / arm / folder
        (path / ".hydra").mkdir(parents=True)
        config = f"seed: {seed}\nalgorithm:\n  name: {arm}\noverrides:\n  env: {maze.ENV_ID_V1}\n"
        (path / ".hydra" / "config.yaml").write_text(config)
        (path / "results.csv").write_text(f"env_step,episode_reward\n299,{first}\n599,{last}\n")

    # seeds 0-5 in both arms (folder names need not match); seed 9 only in arm b
    for seed in range(6):
        run("a", f"mbpo_seed{seed}", seed, reached if seed == 0 else never)
        run("b", f"x/bound_{seed}", seed, reached, first=reached if seed == 1 else never)
    run("b", "bound_9", 9, reached)
    result = module.paired(tmp_path / "a", tmp_path / "b")
    assert result["seeds"] == list(range(6))
    assert sum(result["last_a"]) == 1 and sum(result["last_b"]) == 6
    assert (result["only_a"], result["only_b"]) == (0, 5)
    assert result["p_value"] == pytest.approx(2 * 0.5**5)  # exact two-sided sign test
    assert (result["reached_a"], result["reached_b"]) == (1, 7)
    assert result["evaluations_a"] == result["evaluations_b"] == 12
    assert module.main(["--paired", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "successful seeds: 1 of 6 | 6 of 6" in capsys.readouterr().out
    assert module.paired(tmp_path / "a", tmp_path / "a")["p_value"] == 1.0  # no discordant pair
    (tmp_path / "c").mkdir()  # no run at all
    assert module.main(["--paired", str(tmp_path / "a"), str(tmp_path / "c")]) == 2
    run("d", "bound_7", 7, reached)  # runs, but no seed in common
    assert module.main(["--paired", str(tmp_path / "a"), str(tmp_path / "d")]) == 2


# ----------------------------------------------------------------------------- PointMaze-v1


def test_v1_is_the_same_maze_with_the_calibrated_noise():
    v0, v1 = gym.make(ENV_ID), gym.make(maze.ENV_ID_V1)
    assert v0.unwrapped.noise_std == NOISE_STD
    assert v1.unwrapped.noise_std == maze.NOISE_STD_V1 > NOISE_STD
    assert v1.spec.max_episode_steps == v0.spec.max_episode_steps == MAX_EPISODE_STEPS
    # the displacement's spread is the registered noise: a zero action, many steps
    v1.reset(seed=0)
    steps = []
    for _ in range(400):
        v1.unwrapped.position = np.array([-0.5, 0.0])  # far from walls and border
        before = v1.unwrapped.position
        obs, *_ = v1.step(np.zeros(2, dtype=np.float32))
        steps.append(obs - before)
    assert np.std(steps) == pytest.approx(maze.NOISE_STD_V1, rel=0.15)


@pytest.mark.parametrize(
    "ours, base",
    [("mbpo_point_maze_v1", "mbpo_point_maze"), ("pets_point_maze_v1", "pets_point_maze")],
)
def test_v1_overrides_differ_from_v0_only_in_env_and_budget(ours, base):
    family = ours.split("_")[0]
    algorithm = "mbpo" if family == "mbpo" else "pets"
    mine = mbb.compose([f"algorithm={algorithm}", f"overrides={ours}"]).overrides
    theirs = mbb.compose([f"algorithm={algorithm}", f"overrides={base}"]).overrides
    changed = {k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)}
    assert changed == {"env", "num_steps"}
    assert mine.env == f"gym___{maze.ENV_ID_V1}" and mine.num_steps == 5000
    env, term_fn, _ = mbb.make_env(mbb.compose([f"algorithm={algorithm}", f"overrides={ours}"]))
    assert env.unwrapped.noise_std == maze.NOISE_STD_V1 and term_fn is point_maze
