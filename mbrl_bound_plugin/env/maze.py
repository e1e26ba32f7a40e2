"""A noisy 2-D point maze with a wall between start and goal: a hard-exploration task.

The continuous counterpart of the MnM paper's noisy gridworld with walls (design and
measurements: ``docs/maze.md``). The agent is a point in the square ``[-1, 1]^2``; it
starts on the left, the goal disc is on the right, and a vertical wall between them
leaves a gap only at the top, far from the straight line::

    y = 1  +-------------------+
           |         .         |     .  the gap (no wall for y >= 0.5)
    0.5    |         #         |     #  the wall, x = 0, -1 <= y < 0.5
           |         #         |
    0      |  S      #     G   |     S  start (-0.7, 0), G  goal disc (0.7, 0), r = 0.25
           |         #         |
    y = -1 +---------#---------+
         x = -1     x = 0     x = 1

- Observation: the position ``(x, y)``, float32. The dynamics are first order (the
  action sets the displacement), so the position alone is Markov.
- Action: a velocity command in ``[-1, 1]^2``; the step's displacement is
  ``MAX_STEP * a + N(0, noise_std^2 I)`` (``MAX_STEP = 0.1``, ``noise_std = 0.03``).
- Collisions: a displacement whose segment crosses the wall loses its x component (the
  point slides along the wall); the arena's border clips the position. Deterministic
  given the noise.
- Reward (of the next position): ``GOAL_REWARD = 1.0`` inside the goal disc,
  ``STEP_REWARD = 0.01`` elsewhere; every reward is positive.
- No termination; gymnasium's ``TimeLimit`` truncates at ``MAX_EPISODE_STEPS = 150``
  (set by :func:`register`). ``info["success"]``: the goal was reached at least once in
  the episode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:  # torch is imported by the functions on mbrl's batches, when called:
    import torch  # the maze itself, and the report that reads its constants, need none

ENV_ID = "mbrl_bound/PointMaze-v0"
ENV_ID_V1 = "mbrl_bound/PointMaze-v1"  # the same maze with NOISE_STD_V1: docs/maze.md
MAX_EPISODE_STEPS = 150

ARENA = 1.0  # the arena is [-ARENA, ARENA]^2
MAX_STEP = 0.1  # displacement per step at |a_i| = 1, per coordinate
NOISE_STD = 0.03  # std of the Gaussian noise on each coordinate of each displacement
NOISE_STD_V1 = 0.15  # v1's noise, calibrated so that MBPO sometimes succeeds
START = (-0.7, 0.0)
START_JITTER = 0.05  # the start position is START + U(-START_JITTER, START_JITTER)^2
GOAL = (0.7, 0.0)
GOAL_RADIUS = 0.25
WALL_X = 0.0  # the wall is the segment x = WALL_X, -ARENA <= y < GAP_LOW
GAP_LOW = 0.5  # the gap is WALL_X, GAP_LOW <= y <= ARENA
GOAL_REWARD = 1.0
STEP_REWARD = 0.01


def move(x: float, y: float, dx: float, dy: float) -> tuple[float, float]:
    """Where a displacement ``(dx, dy)`` from ``(x, y)`` ends: the maze's collision rule.

    A segment from ``(x, y)`` to ``(x + dx, y + dy)`` that crosses the line ``x = WALL_X``
    below ``GAP_LOW`` is blocked by the wall: its x component is dropped (the point
    slides along the wall on its own side). The result is then clipped to the arena.

    Args:
        x: current x.
        y: current y.
        dx: displacement in x (noise included).
        dy: displacement in y (noise included).

    Returns:
        The new position ``(x, y)``.
    """
    nx, ny = x + dx, y + dy
    if (x < WALL_X) != (nx < WALL_X):
        y_cross = y + (WALL_X - x) / (nx - x) * dy
        if y_cross < GAP_LOW:
            nx = x
    nx = min(max(nx, -ARENA), ARENA)
    ny = min(max(ny, -ARENA), ARENA)
    return nx, ny


def in_goal(x: float, y: float) -> bool:
    """Whether ``(x, y)`` lies in the goal disc (boundary included)."""
    return (x - GOAL[0]) ** 2 + (y - GOAL[1]) ** 2 <= GOAL_RADIUS**2


class PointMazeEnv(gym.Env[np.ndarray, np.ndarray]):
    """The noisy point maze (geometry and rules in the module docstring).

    Register it with :func:`register` and make it with ``gymnasium.make(ENV_ID)`` for
    the 150-step time limit; constructed directly it never truncates.

    Args:
        noise_std: std of the Gaussian noise added to each coordinate of each step's
            displacement (0 makes the dynamics deterministic).
        render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, noise_std: float = NOISE_STD, render_mode: str | None = None):
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.noise_std = float(noise_std)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-ARENA, ARENA, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._x, self._y = START
        self._success = False

    @property
    def position(self) -> np.ndarray:
        """The current position ``(x, y)`` (float64); settable, e.g. to probe the dynamics."""
        return np.array([self._x, self._y])

    @position.setter
    def position(self, value: np.ndarray) -> None:
        x, y = (float(v) for v in value)
        if not (-ARENA <= x <= ARENA and -ARENA <= y <= ARENA):
            raise ValueError(f"position {(x, y)} is outside the arena")
        self._x, self._y = x, y

    def _obs(self) -> np.ndarray:
        return np.array([self._x, self._y], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode near ``START``.

        Args:
            seed: seeds the environment's generator (start jitter and dynamics noise).
            options: unused.

        Returns:
            The first observation and ``{"success": False, "in_goal": False}``.
        """
        super().reset(seed=seed)
        jx, jy = self.np_random.uniform(-START_JITTER, START_JITTER, size=2)
        self._x, self._y = START[0] + float(jx), START[1] + float(jy)
        self._success = False
        return self._obs(), {"success": False, "in_goal": False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Moves by ``MAX_STEP * clip(action, -1, 1)`` plus noise, through the wall rule.

        Args:
            action: the velocity command, shape ``(2,)``; clipped to ``[-1, 1]``.

        Returns:
            Observation, reward (of the new position), ``terminated`` (always ``False``),
            ``truncated`` (``False``; the ``TimeLimit`` wrapper truncates) and info with
            ``success`` (goal reached at least once this episode) and ``in_goal``.
        """
        ax, ay = float(action[0]), float(action[1])
        dx = MAX_STEP * min(max(ax, -1.0), 1.0)
        dy = MAX_STEP * min(max(ay, -1.0), 1.0)
        if self.noise_std > 0:
            nx, ny = self.np_random.standard_normal(2)
            dx += self.noise_std * float(nx)
            dy += self.noise_std * float(ny)
        self._x, self._y = move(self._x, self._y, dx, dy)
        obs = self._obs()
        inside = in_goal(float(obs[0]), float(obs[1]))
        self._success = self._success or inside
        reward = GOAL_REWARD if inside else STEP_REWARD
        return obs, reward, False, False, {"success": self._success, "in_goal": inside}

    def render(self) -> np.ndarray | None:
        """A 100 x 100 RGB picture: wall black, goal green, the point red (``rgb_array``)."""
        if self.render_mode != "rgb_array":
            return None
        size = 100
        centers = (np.arange(size) + 0.5) / size * 2 * ARENA - ARENA
        xs, ys = np.meshgrid(centers, centers[::-1])  # row 0 is the top (y = ARENA)
        img = np.full((size, size, 3), 255, dtype=np.uint8)
        img[(xs - GOAL[0]) ** 2 + (ys - GOAL[1]) ** 2 <= GOAL_RADIUS**2] = (60, 180, 75)
        img[(np.abs(xs - WALL_X) < 2 * ARENA / size) & (ys < GAP_LOW)] = (0, 0, 0)
        img[(xs - self._x) ** 2 + (ys - self._y) ** 2 <= 0.03**2] = (220, 30, 30)
        return img


def register() -> None:
    """Registers :class:`PointMazeEnv` as ``ENV_ID`` and ``ENV_ID_V1`` (idempotent).

    Both have the 150-step time limit; v0 has ``noise_std = NOISE_STD``, v1
    ``NOISE_STD_V1``. After it, ``gymnasium.make("mbrl_bound/PointMaze-v1")`` and mbrl's
    ``overrides.env: "gym___mbrl_bound/PointMaze-v1"`` make the maze.
    """
    for env_id, noise_std in ((ENV_ID, NOISE_STD), (ENV_ID_V1, NOISE_STD_V1)):
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=f"{__name__}:PointMazeEnv",
                max_episode_steps=MAX_EPISODE_STEPS,
                kwargs={"noise_std": noise_std},
            )


def point_maze(act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Termination function of the maze: it never terminates (episodes only truncate).

    Args:
        act: batch of actions, shape ``B x 2`` (unused).
        next_obs: batch of next observations ``[x, y]``, shape ``B x 2``.

    Returns:
        Boolean tensor of shape ``B x 1``, all ``False``.
    """
    import torch

    assert next_obs.ndim == 2
    return torch.zeros(next_obs.shape[0], 1, dtype=torch.bool, device=next_obs.device)


def point_maze_reward(act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Reward function of the maze, in mbrl's ``(act, next_obs)`` form.

    Args:
        act: batch of actions, shape ``B x 2`` (unused).
        next_obs: batch of next observations ``[x, y]``, shape ``B x 2``.

    Returns:
        Float tensor of shape ``B x 1``: ``GOAL_REWARD`` in the goal disc, else
        ``STEP_REWARD``.
    """
    import torch

    assert next_obs.ndim == 2
    d2 = (next_obs[:, 0] - GOAL[0]) ** 2 + (next_obs[:, 1] - GOAL[1]) ** 2
    inside = d2 <= GOAL_RADIUS**2
    reward = torch.where(inside, GOAL_REWARD, STEP_REWARD).to(next_obs.dtype)
    return reward[:, None]
