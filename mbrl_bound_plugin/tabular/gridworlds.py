"""Gridworld MDPs: the layout, a generic builder, the three grids of the paper's
simulations, the aliased model class of ``inaccurate-model`` and greedy rollouts.

Cell ``(i, j)`` of an ``n_rows x n_cols`` grid is state ``n_cols * i + j``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mbrl_bound_plugin.tabular.mdp import MDP

# Gridworld moves as (d_row, d_col).
UP, RIGHT, DOWN, LEFT, STAY = (-1, 0), (0, 1), (1, 0), (0, -1), (0, 0)
FOUR_MOVES: tuple[tuple[int, int], ...] = (UP, RIGHT, DOWN, LEFT)
FIVE_MOVES: tuple[tuple[int, int], ...] = (UP, RIGHT, DOWN, LEFT, STAY)


@dataclass(frozen=True)
class GridWorld:
    """A gridworld MDP together with its layout (for aliasing, rollouts and plots).

    Cell ``(i, j)`` is state ``n_cols * i + j``. Wall cells are states too (absorbing,
    unreachable from the start); they keep the tables rectangular.

    Attributes:
        mdp: the finite MDP.
        n_rows: number of grid rows.
        n_cols: number of grid columns.
        walls: the wall cells ``(i, j)``.
        moves: the displacement ``(d_row, d_col)`` each action intends.
        goal: the goal cell, if the task has one.
    """

    mdp: MDP
    n_rows: int
    n_cols: int
    walls: frozenset[tuple[int, int]]
    moves: tuple[tuple[int, int], ...]
    goal: tuple[int, int] | None = None

    def state(self, cell: tuple[int, int]) -> int:
        """Return the state index of cell ``(i, j)``."""
        return self.n_cols * cell[0] + cell[1]

    def cell(self, state: int) -> tuple[int, int]:
        """Return the cell ``(i, j)`` of a state index."""
        return divmod(int(state), self.n_cols)


def _clip_to_grid(cell: tuple[int, int], n_rows: int, n_cols: int) -> tuple[int, int]:
    return min(max(cell[0], 0), n_rows - 1), min(max(cell[1], 0), n_cols - 1)


def make_gridworld(
    n_rows: int,
    n_cols: int,
    walls: Iterable[tuple[int, int]],
    moves: Sequence[tuple[int, int]],
    cell_reward: Callable[[tuple[int, int]], float],
    gamma: float,
    start: tuple[int, int],
    outcome_probs: Callable[[tuple[int, int], int], dict[int, float]] | None = None,
    goal: tuple[int, int] | None = None,
) -> GridWorld:
    """Build a gridworld MDP.

    A move off the grid is clipped to it; a move into a wall stays put. The reward of
    ``(s, a)`` is the reward of the cell ``s``.

    Args:
        n_rows: number of rows.
        n_cols: number of columns.
        walls: wall cells ``(i, j)``.
        moves: displacement ``(d_row, d_col)`` intended by each action.
        cell_reward: reward of a cell, for every action taken there.
        gamma: discount.
        start: start cell.
        outcome_probs: ``(cell, action) -> {executed action index: probability}``; the
            executed action's move is then applied. ``None`` means deterministic.
        goal: goal cell, kept for plots and rollouts.

    Returns:
        The gridworld.
    """
    walls = frozenset(walls)
    S, A = n_rows * n_cols, len(moves)
    P = np.zeros((S, A, S))
    R = np.zeros((S, A))
    for s in range(S):
        cell = divmod(s, n_cols)
        R[s, :] = cell_reward(cell)
        if cell in walls:  # unreachable, absorbing
            P[s, :, s] = 1.0
            continue
        for a in range(A):
            probs = {a: 1.0} if outcome_probs is None else outcome_probs(cell, a)
            for b, prob in probs.items():
                dr, dc = moves[b]
                nxt = _clip_to_grid((cell[0] + dr, cell[1] + dc), n_rows, n_cols)
                if nxt in walls:
                    nxt = cell
                P[s, a, n_cols * nxt[0] + nxt[1]] += prob
    mdp = MDP(P=P, R=R, gamma=gamma, start=n_cols * start[0] + start[1])
    return GridWorld(mdp, n_rows, n_cols, walls, tuple(moves), goal)


def bound_tracking_gridworld() -> GridWorld:
    """The 10x10 gridworld of the ``bound-tracking`` experiment.

    Walls on rows 0-5 of columns 4-5; four moves; with noise 0.5 the intended action is
    executed with probability 0.5, plus each of the four actions with probability 0.125;
    reward 1 everywhere and 10 in the goal ``(0, 9)``; start ``(0, 0)``; ``gamma = 0.9``.

    Returns:
        The gridworld.
    """
    noise = 0.5

    def outcome_probs(cell: tuple[int, int], a: int) -> dict[int, float]:
        probs = {b: noise / 4 for b in range(4)}
        probs[a] += 1.0 - noise
        return probs

    goal = (0, 9)
    return make_gridworld(
        10,
        10,
        walls=[(i, j) for i in range(6) for j in (4, 5)],
        moves=FOUR_MOVES,
        cell_reward=lambda c: 10.0 if c == goal else 1.0,
        gamma=0.9,
        start=(0, 0),
        outcome_probs=outcome_probs,
        goal=goal,
    )


def risk_gridworld() -> GridWorld:
    """The 3x3 gridworld of the ``risk`` experiment.

    Rows 1-2 are walls, so the free cells are ``(0, 0), (0, 1), (0, 2)``. Moves in
    columns 0 and 1 are deterministic; in column 2 every action does what it intends
    with probability 0.5 and moves left otherwise. Reward 1 everywhere except 50 in
    column 0 and 51 in column 2; ``gamma = 0.9``; start ``(0, 1)``. The safe choice
    (column 0) is optimal; column 2 pays one more per step but keeps pushing the agent
    back to the reward-1 cell.

    Returns:
        The gridworld.
    """
    left = FOUR_MOVES.index(LEFT)

    def outcome_probs(cell: tuple[int, int], a: int) -> dict[int, float]:
        if cell[1] == 2:
            probs = {a: 0.5}
            probs[left] = probs.get(left, 0.0) + 0.5
            return probs
        return {a: 1.0}

    return make_gridworld(
        3,
        3,
        walls=[(i, j) for i in (1, 2) for j in range(3)],
        moves=FOUR_MOVES,
        cell_reward=lambda c: {0: 50.0, 2: 51.0}.get(c[1], 1.0),
        gamma=0.9,
        start=(0, 1),
        outcome_probs=outcome_probs,
    )


def inaccurate_model_gridworld() -> GridWorld:
    """The 15x15 gridworld of the ``inaccurate-model`` experiment.

    Deterministic, five actions (four moves and stay), walls on rows 0-7 of column 7,
    reward 1 everywhere and 100 in the goal ``(2, 12)``, start ``(0, 0)``,
    ``gamma = 0.9``.

    Returns:
        The gridworld.
    """
    goal = (2, 12)
    return make_gridworld(
        15,
        15,
        walls=[(i, 7) for i in range(8)],
        moves=FIVE_MOVES,
        cell_reward=lambda c: 100.0 if c == goal else 1.0,
        gamma=0.9,
        start=(0, 0),
        goal=goal,
    )


def aliased_projection(grid: GridWorld, block: int = 3) -> Callable[[np.ndarray], np.ndarray]:
    """The projection onto the aliased model class of ``inaccurate-model``.

    Within each ``block x block`` block of cells the model can only represent, per
    action, one distribution of displacements ``(d_row, d_col)``, applied from every
    cell of the block and clipped to the grid (the model class knows nothing of walls,
    so from a cell beside a wall it may put mass on the wall cell). The projection of a
    model averages, per block and action, the displacement distributions of the block's
    non-wall cells (the states data can come from) and re-applies the average from every
    cell of the block. It is linear, so smoothing keeps the model in the class. (It is a
    fit, not an orthogonal projection: where clipping at the grid's edge changes a
    displacement, fitting a class member again can give a different member. MnM only
    applies it to ``q_new ∝ p exp(V)``, which lies in the support of ``p``.)

    Args:
        grid: the gridworld whose layout defines the blocks.
        block: side of a block, in cells.

    Returns:
        A function mapping a model ``q[S, A, S]`` to its projection.
    """
    n_rows, n_cols = grid.n_rows, grid.n_cols
    S = n_rows * n_cols
    rows, cols = np.divmod(np.arange(S), n_cols)
    # displacement index of every (s, s') pair: (d_row, d_col) shifted to be >= 0
    disp = (rows[None, :] - rows[:, None] + n_rows - 1) * (2 * n_cols - 1) + (
        cols[None, :] - cols[:, None] + n_cols - 1
    )
    n_disp = (2 * n_rows - 1) * (2 * n_cols - 1)
    d_rows, d_cols = np.divmod(np.arange(n_disp), 2 * n_cols - 1)
    d_rows, d_cols = d_rows - (n_rows - 1), d_cols - (n_cols - 1)
    # target[s, d]: where displacement d lands from s once clipped to the grid
    t_rows = np.clip(rows[:, None] + d_rows[None, :], 0, n_rows - 1)
    t_cols = np.clip(cols[:, None] + d_cols[None, :], 0, n_cols - 1)
    target = t_rows * n_cols + t_cols
    block_id = (rows // block) * ((n_cols + block - 1) // block) + cols // block
    is_wall = np.array([grid.cell(s) in grid.walls for s in range(S)])

    def project(q: np.ndarray) -> np.ndarray:
        A = q.shape[1]
        # displacement distribution of every (s, a): D[s, a, d]
        D = np.zeros((S, A, n_disp))
        for s in range(S):
            np.add.at(D[s], (slice(None), disp[s]), q[s])
        out = np.zeros_like(q)
        for b in np.unique(block_id):
            members = np.flatnonzero(block_id == b)
            data = members[~is_wall[members]]
            avg = D[data].mean(axis=0) if data.size else D[members].mean(axis=0)  # [A, d]
            for s in members:
                for a in range(A):
                    np.add.at(out[s, a], target[s], avg[a])
        return out

    return project


def rollout(grid: GridWorld, pi: np.ndarray, steps: int = 100) -> list[int]:
    """Roll out the most likely action of ``pi`` in the real MDP.

    At each step the agent takes ``argmax_a pi(a|s)`` and moves to the most likely next
    state (with deterministic dynamics, the exact path).

    Args:
        grid: the gridworld.
        pi: policy ``[S, A]``.
        steps: number of steps.

    Returns:
        The visited states, start included (``steps + 1`` entries).
    """
    s = grid.mdp.start
    path = [s]
    for _ in range(steps):
        a = int(np.argmax(pi[s]))
        s = int(np.argmax(grid.mdp.P[s, a]))
        path.append(s)
    return path
