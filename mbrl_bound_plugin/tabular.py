"""The exact, tabular version of the Mismatched-No-More (MnM) lower bound.

In a finite MDP every quantity of ``shared/docs/bound.md`` is exact: the true dynamics
``p`` and the model ``q`` are tables ``[S, A, S]``, ``KL(q || p)`` is a finite sum, policy
evaluation is a linear fixed point and the model step has a closed form. This module
runs the paper's numerical simulations on small gridworlds:

- the bound ``L(pi, q)`` and the exact ``log J(pi)`` of the same policy in the real MDP,
- the MnM iteration (policy step + closed-form model step, both smoothed),
- the VMBPO objective (same iteration with reward ``r - KL`` and no log),
- three experiments (``bound-tracking``, ``risk``, ``inaccurate-model``) behind a CLI::

    python -m mbrl_bound_plugin.tabular EXPERIMENT [--json] [--plot FILE.png]

Conventions. ``P[s, a, s']`` and ``q[s, a, s']`` are transition tables, ``R[s, a]`` the
reward, ``pi[s, a]`` a policy. The bound evaluated here is the one of the spec and of the
issue, with the undiscounted log-ratio, whose exact conditional expectation is
``-KL(q(.|s,a) || p(.|s,a))``::

    L(pi, q) = E_{q,pi}[ sum_t gamma^t ((1 - gamma) log r(s_t, a_t) - KL_t) ] - log(1 - gamma)

Everything here is numpy; matplotlib is imported lazily by the plotting functions only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Gridworld moves as (d_row, d_col).
UP, RIGHT, DOWN, LEFT, STAY = (-1, 0), (0, 1), (1, 0), (0, -1), (0, 0)
FOUR_MOVES: tuple[tuple[int, int], ...] = (UP, RIGHT, DOWN, LEFT)
FIVE_MOVES: tuple[tuple[int, int], ...] = (UP, RIGHT, DOWN, LEFT, STAY)

EVAL_TOL = 1e-6  # sup-norm change at which policy evaluation stops
MODEL_TOL = 1e-6  # max-abs change of q at which the MnM iteration stops
SMOOTHING = 0.5  # x <- SMOOTHING * x_new + (1 - SMOOTHING) * x


# ---------------------------------------------------------------------------------------
# MDPs and gridworlds
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MDP:
    """A finite, discounted MDP with a single start state.

    Attributes:
        P: true dynamics ``p(s'|s,a)``, shape ``[S, A, S]``, rows sum to one.
        R: reward ``r(s, a)``, shape ``[S, A]``.
        gamma: discount in ``(0, 1)``.
        start: index of the start state.
    """

    P: np.ndarray
    R: np.ndarray
    gamma: float
    start: int

    def __post_init__(self) -> None:
        S, A, S2 = self.P.shape
        if S != S2 or self.R.shape != (S, A):
            raise ValueError(
                f"P must be [S, A, S] and R [S, A], got {self.P.shape}, {self.R.shape}"
            )
        if not 0.0 < self.gamma < 1.0:
            raise ValueError(f"gamma must be in (0, 1), got {self.gamma}")
        if not np.allclose(self.P.sum(-1), 1.0) or (self.P < 0).any():
            raise ValueError("every P[s, a, :] must be a probability distribution")
        if not 0 <= self.start < S:
            raise ValueError(f"start must be a state index in [0, {S}), got {self.start}")

    @property
    def n_states(self) -> int:
        """Number of states ``S``."""
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        """Number of actions ``A``."""
        return self.P.shape[1]


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


# ---------------------------------------------------------------------------------------
# Exact quantities
# ---------------------------------------------------------------------------------------


def kl_divergence(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Exact ``KL(q || p)`` over the last axis, with ``0 log 0 = 0``.

    Args:
        q: distributions, shape ``[..., S]``.
        p: distributions of the same shape.

    Returns:
        ``sum_s' q log(q / p)``, shape ``[...]``; ``+inf`` where ``q`` puts mass
        outside the support of ``p``.
    """
    q, p = np.broadcast_arrays(np.asarray(q, float), np.asarray(p, float))
    pos = q > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pos, q * (np.log(np.where(pos, q, 1.0)) - np.log(p)), 0.0)
    return terms.sum(-1)


def evaluate_policy(
    P: np.ndarray,
    R: np.ndarray,
    pi: np.ndarray,
    gamma: float,
    tol: float = EVAL_TOL,
    max_iter: int = 100_000,
) -> np.ndarray:
    """Policy evaluation by fixed-point iteration of ``V <- r_pi + gamma P_pi V``.

    Starts from ``V = 0`` and stops once the sup-norm change is below ``tol`` (so the
    error is at most ``tol * gamma / (1 - gamma)``).

    Args:
        P: dynamics ``[S, A, S]`` (the real ``p`` or a model ``q``).
        R: reward ``[S, A]``; must be finite wherever ``pi`` puts mass.
        pi: policy ``[S, A]``.
        gamma: discount.
        tol: sup-norm change at which to stop.
        max_iter: safety cap on the number of sweeps.

    Returns:
        ``V[s] = E[sum_t gamma^t R(s_t, a_t) | s_0 = s]``, shape ``[S]``.
    """
    r_pi = np.where(pi > 0, pi * np.where(pi > 0, R, 0.0), 0.0).sum(-1)
    if not np.isfinite(r_pi).all():
        raise ValueError("the reward is not finite where the policy acts (infinite KL?)")
    P_pi = np.einsum("sa,sat->st", pi, P)
    V = np.zeros(P.shape[0])
    for _ in range(max_iter):
        V_new = r_pi + gamma * P_pi @ V
        if np.max(np.abs(V_new - V)) < tol:
            return V_new
        V = V_new
    raise RuntimeError(f"policy evaluation did not converge in {max_iter} sweeps")


def q_values(P: np.ndarray, R: np.ndarray, V: np.ndarray, gamma: float) -> np.ndarray:
    """One-step lookahead ``Q[s, a] = R[s, a] + gamma * sum_s' P[s, a, s'] V[s']``.

    Args:
        P: dynamics ``[S, A, S]``.
        R: reward ``[S, A]``.
        V: state values ``[S]``.
        gamma: discount.

    Returns:
        ``Q``, shape ``[S, A]``.
    """
    return R + gamma * P @ V


def greedy_policy(Q: np.ndarray) -> np.ndarray:
    """Deterministic greedy policy (ties go to the lowest action index).

    Args:
        Q: action values ``[S, A]``.

    Returns:
        One-hot policy ``[S, A]``.
    """
    pi = np.zeros_like(Q, dtype=float)
    pi[np.arange(Q.shape[0]), np.argmax(Q, axis=1)] = 1.0
    return pi


def uniform_policy(mdp: MDP) -> np.ndarray:
    """The uniform policy ``[S, A]`` of ``mdp``."""
    return np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)


def discounted_return(mdp: MDP, pi: np.ndarray, tol: float = EVAL_TOL) -> float:
    """``J(pi) = E_{p,pi}[sum_t gamma^t r(s_t, a_t)]`` from the start state, real MDP.

    Args:
        mdp: the real MDP.
        pi: policy ``[S, A]``.
        tol: policy-evaluation tolerance.

    Returns:
        The expected discounted return.
    """
    return float(evaluate_policy(mdp.P, mdp.R, pi, mdp.gamma, tol)[mdp.start])


def log_return(mdp: MDP, pi: np.ndarray, tol: float = EVAL_TOL) -> float:
    """Exact ``log J(pi)`` in the real MDP (rewards must be positive).

    Args:
        mdp: the real MDP.
        pi: policy ``[S, A]``.
        tol: policy-evaluation tolerance.

    Returns:
        ``log J(pi)``.
    """
    return float(np.log(discounted_return(mdp, pi, tol)))


def _reachable(P_pi: np.ndarray, start: int) -> np.ndarray:
    """Boolean mask of the states reachable from ``start`` under the chain ``P_pi``."""
    seen = np.zeros(P_pi.shape[0], dtype=bool)
    seen[start] = True
    frontier = seen.copy()
    while frontier.any():
        nxt = (P_pi[frontier] > 0).any(axis=0) & ~seen
        seen |= nxt
        frontier = nxt
    return seen


def augmented_reward(
    mdp: MDP,
    q: np.ndarray,
    objective: str = "mnm",
    use_kl: bool = True,
    kl_clip: float | None = None,
) -> np.ndarray:
    """Reward of the policy step inside the model, with the exact ``-KL`` as ratio term.

    - ``"mnm"``: ``(1 - gamma) log r - KL - (1 - gamma) log(1 - gamma)``; the value of a
      policy under it at the start state is the bound ``L(pi, q)``.
    - ``"vmbpo"``: ``r - KL`` (no log).

    Args:
        mdp: the real MDP (gives ``p``, ``r`` and ``gamma``).
        q: model ``[S, A, S]``.
        objective: ``"mnm"`` or ``"vmbpo"``.
        use_kl: whether to include the ``-KL(q || p)`` (classifier) term.
        kl_clip: if set, ``KL`` is clipped to at most this value.

    Returns:
        Reward ``[S, A]`` (``-inf`` where ``KL`` is infinite and not clipped).
    """
    if objective == "mnm":
        if (mdp.R <= 0).any():
            raise ValueError("the MnM bound needs positive rewards (log r)")
        g = mdp.gamma
        base = (1 - g) * np.log(mdp.R) - (1 - g) * np.log(1 - g)
    elif objective == "vmbpo":
        base = mdp.R.astype(float)
    else:
        raise ValueError(f"objective must be 'mnm' or 'vmbpo', got {objective!r}")
    if not use_kl:
        return base
    kl = kl_divergence(q, mdp.P)
    if kl_clip is not None:
        kl = np.minimum(kl, kl_clip)
    return base - kl


def _objective_value(
    mdp: MDP, q: np.ndarray, pi: np.ndarray, reward: np.ndarray, tol: float
) -> float:
    """Value at the start of ``pi`` in ``q`` under ``reward``; ``-inf`` when an infinite
    (negative) reward is hit with positive probability."""
    P_pi = np.einsum("sa,sat->st", pi, q)
    bad = ~np.isfinite(reward) & (pi > 0)
    if (bad.any(axis=1) & _reachable(P_pi, mdp.start)).any():
        return -np.inf
    reward = np.where(np.isfinite(reward), reward, 0.0)  # only unreachable entries remain
    return float(evaluate_policy(q, reward, pi, mdp.gamma, tol)[mdp.start])


def bound(
    mdp: MDP, q: np.ndarray, pi: np.ndarray, kl_clip: float | None = None, tol: float = EVAL_TOL
) -> float:
    """The MnM lower bound ``L(pi, q)`` on ``log J(pi)``, computed exactly.

    ``L = E_{q,pi}[sum_t gamma^t ((1 - gamma) log r(s_t, a_t) - KL(q || p)(s_t, a_t))]
    - log(1 - gamma)``, the expectation over trajectories in the model ``q`` from the
    start state. For positive rewards and any ``q``, ``pi``: ``L <= log J(pi)``.
    (With ``kl_clip`` set the result is no longer guaranteed to be a lower bound.)

    Args:
        mdp: the real MDP.
        q: model ``[S, A, S]``.
        pi: policy ``[S, A]``.
        kl_clip: optional cap on ``KL``.
        tol: policy-evaluation tolerance.

    Returns:
        ``L(pi, q)``; ``-inf`` if ``q`` leaves the support of ``p`` where ``pi`` goes.
    """
    return _objective_value(mdp, q, pi, augmented_reward(mdp, q, "mnm", True, kl_clip), tol)


def vmbpo_objective(mdp: MDP, q: np.ndarray, pi: np.ndarray, tol: float = EVAL_TOL) -> float:
    """The VMBPO objective: return from the start in ``q`` under reward ``r - KL(q || p)``.

    Unlike ``exp(L)`` it is not a lower bound on ``J(pi)``: an optimistic model can make
    it exceed the real return.

    Args:
        mdp: the real MDP.
        q: model ``[S, A, S]``.
        pi: policy ``[S, A]``.
        tol: policy-evaluation tolerance.

    Returns:
        ``E_{q,pi}[sum_t gamma^t (r - KL)]`` (not its log).
    """
    return _objective_value(mdp, q, pi, augmented_reward(mdp, q, "vmbpo"), tol)


def model_step(p: np.ndarray, V: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Closed-form model step ``q(s'|s,a) ∝ p(s'|s,a) exp(scale * V(s'))``.

    Per ``(s, a)`` this is the exact maximizer over distributions ``q`` of
    ``E_{s'~q}[log p(s'|s,a) - log q(s'|s,a) + scale * V(s')]``
    (``= log Z - KL(q || p exp(scale V) / Z)``); see :func:`model_step_objective`.

    - ``scale = 1`` (default) is what the paper's tabular simulations and issue 4 use:
      it maximizes the tighter form of the bound, where the log-ratio is discounted
      together with the next state (``gamma * log p/q`` next to ``gamma * V(s')``).
    - ``scale = gamma`` maximizes the form of ``shared/docs/bound.md``, whose per-step
      ratio is undiscounted (``log p/q + gamma * V(s')``).

    Args:
        p: true dynamics ``[S, A, S]``.
        V: state values ``[S]`` of the current policy in the current model.
        scale: multiplier of ``V`` (``1`` or ``gamma``, see above).

    Returns:
        The model ``[S, A, S]`` (zero wherever ``p`` is zero).
    """
    logits = np.where(p > 0, scale * V[None, None, :], -np.inf)
    logits = logits - logits.max(-1, keepdims=True)
    w = p * np.exp(logits)
    return w / w.sum(-1, keepdims=True)


def model_step_objective(q: np.ndarray, p: np.ndarray, V: np.ndarray, scale: float = 1.0) -> float:
    """The per-``(s, a)`` objective that :func:`model_step` maximizes.

    Args:
        q: a candidate next-state distribution ``[S]`` for one ``(s, a)``.
        p: the true next-state distribution ``[S]`` for that ``(s, a)``.
        V: state values ``[S]``.
        scale: multiplier of ``V``.

    Returns:
        ``E_{s'~q}[log p - log q + scale * V(s')] = -KL(q || p) + scale * E_q[V]``.
    """
    return float(-kl_divergence(q, p) + scale * np.dot(q, V))


# ---------------------------------------------------------------------------------------
# The iterations
# ---------------------------------------------------------------------------------------


@dataclass
class IterationResult:
    """The sequence of (smoothed) policies and models of a joint iteration.

    Attributes:
        policies: ``pi_k``, ``k = 0..K`` (``pi_0`` is the initial policy).
        models: ``q_k``, ``k = 0..K`` (``q_0`` is the initial model).
        converged: whether ``q`` stopped moving before the iteration cap.
    """

    policies: list[np.ndarray] = field(default_factory=list)
    models: list[np.ndarray] = field(default_factory=list)
    converged: bool = False

    @property
    def policy(self) -> np.ndarray:
        """The final policy."""
        return self.policies[-1]

    @property
    def model(self) -> np.ndarray:
        """The final model."""
        return self.models[-1]


def joint_iteration(
    mdp: MDP,
    objective: str = "mnm",
    use_kl: bool = True,
    kl_clip: float | None = None,
    project: Callable[[np.ndarray], np.ndarray] | None = None,
    max_iter: int = 100,
    model_tol: float | None = MODEL_TOL,
    smoothing: float = SMOOTHING,
    eval_tol: float = EVAL_TOL,
) -> IterationResult:
    """The paper's tabular simulation: joint, smoothed policy and model steps.

    Each iteration: evaluate the current policy in ``q`` under the augmented reward
    (:func:`augmented_reward`), take the greedy policy, form ``q_new ∝ p exp(V)``
    (:func:`model_step`, then ``project`` onto the model class if one is given), and
    smooth both players, ``x <- smoothing * x_new + (1 - smoothing) * x``. Starts from
    the uniform policy and ``q = project(p)`` (``q = p`` for the exact class). Stops when
    ``q`` moves less than ``model_tol`` in max-abs, or after ``max_iter`` iterations.

    With ``objective="mnm"`` this is MnM (the value under the reward is the bound);
    with ``objective="vmbpo"`` it is VMBPO (reward ``r - KL``, no log).

    Args:
        mdp: the real MDP.
        objective: ``"mnm"`` or ``"vmbpo"``.
        use_kl: include the ``-KL`` (classifier) term in the reward.
        kl_clip: cap on ``KL`` (needed when the model class leaves ``p``'s support).
        project: projection onto a restricted model class, or ``None``.
        max_iter: maximum number of iterations.
        model_tol: stop once ``max |q_new - q| < model_tol``; ``None`` runs ``max_iter``.
        smoothing: weight of the new iterate.
        eval_tol: policy-evaluation tolerance.

    Returns:
        The policies and models, initial ones included.
    """
    if not 0.0 < smoothing <= 1.0:
        raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
    pi = uniform_policy(mdp)
    q = project(mdp.P) if project is not None else mdp.P.copy()
    result = IterationResult([pi], [q])
    for _ in range(max_iter):
        reward = augmented_reward(mdp, q, objective, use_kl, kl_clip)
        if not np.isfinite(reward).all():
            raise ValueError("KL(q || p) is infinite for this model class: pass kl_clip")
        V = evaluate_policy(q, reward, pi, mdp.gamma, eval_tol)  # policy evaluation in q
        pi_new = greedy_policy(q_values(q, reward, V, mdp.gamma))  # policy step
        q_new = model_step(mdp.P, V)  # model step: q ∝ p exp(V)
        if project is not None:
            q_new = project(q_new)
        q_next = smoothing * q_new + (1 - smoothing) * q
        pi = smoothing * pi_new + (1 - smoothing) * pi
        moved = float(np.max(np.abs(q_next - q)))
        q = q_next
        result.policies.append(pi)
        result.models.append(q)
        if model_tol is not None and moved < model_tol:
            result.converged = True
            break
    return result


def policy_iteration(mdp: MDP, eval_tol: float = EVAL_TOL, max_iter: int = 1000) -> np.ndarray:
    """Policy iteration on the real MDP with the plain reward (the "Q-learning" baseline).

    Args:
        mdp: the real MDP.
        eval_tol: policy-evaluation tolerance.
        max_iter: maximum number of improvement steps.

    Returns:
        The final deterministic policy ``[S, A]``.
    """
    pi = greedy_policy(np.zeros((mdp.n_states, mdp.n_actions)))
    for _ in range(max_iter):
        V = evaluate_policy(mdp.P, mdp.R, pi, mdp.gamma, eval_tol)
        Q = q_values(mdp.P, mdp.R, V, mdp.gamma)
        # keep the current action unless another is better by more than the eval error
        keep = Q[np.arange(mdp.n_states), pi.argmax(1)] >= Q.max(1) - 10 * eval_tol
        pi_new = np.where(keep[:, None], pi, greedy_policy(Q))
        if np.array_equal(pi_new, pi):
            return pi
        pi = pi_new
    return pi


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


# ---------------------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------------------


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _log_or_none(x: float) -> float | None:
    return float(np.log(x)) if np.isfinite(x) and x > 0 else None


def run_bound_tracking() -> dict[str, Any]:
    """Experiment ``bound-tracking``: the bound, ``log J`` and VMBPO's objective along MnM.

    Runs MnM on :func:`bound_tracking_gridworld` and, for every (smoothed) policy and
    model of the run (initial ones included), reports ``log J`` in the real MDP, the
    bound ``L`` and the log of VMBPO's objective (``None`` if not positive).

    Returns:
        ``{"iterations": [{"log_return", "bound", "vmbpo_objective"}, ...]}``.
    """
    mdp = bound_tracking_gridworld().mdp
    run = joint_iteration(mdp, "mnm")
    rows = [
        {
            "log_return": log_return(mdp, pi),
            "bound": _finite(bound(mdp, q, pi)),
            "vmbpo_objective": _log_or_none(vmbpo_objective(mdp, q, pi)),
        }
        for pi, q in zip(run.policies, run.models, strict=True)
    ]
    return {"iterations": rows}


def run_risk() -> dict[str, float]:
    """Experiment ``risk``: true return of Q-learning's, MnM's and VMBPO's final policies.

    Returns:
        ``{"q_learning": x, "mnm": x, "vmbpo": x}``, each ``J`` from the start state.
    """
    mdp = risk_gridworld().mdp
    return {
        "q_learning": discounted_return(mdp, policy_iteration(mdp)),
        "mnm": discounted_return(mdp, joint_iteration(mdp, "mnm").policy),
        "vmbpo": discounted_return(mdp, joint_iteration(mdp, "vmbpo").policy),
    }


INACCURATE_VARIANTS: dict[str, dict[str, Any]] = {
    "mnm": {"aliased": False, "use_kl": True},
    "mnm_aliased": {"aliased": True, "use_kl": True},
    "aliased_no_classifier": {"aliased": True, "use_kl": False},
}


def _inaccurate_model_runs() -> tuple[GridWorld, dict[str, IterationResult]]:
    grid = inaccurate_model_gridworld()
    project = aliased_projection(grid)
    runs = {
        name: joint_iteration(
            grid.mdp,
            "mnm",
            use_kl=cfg["use_kl"],
            kl_clip=5.0,
            project=project if cfg["aliased"] else None,
            max_iter=20,
            model_tol=None,
        )
        for name, cfg in INACCURATE_VARIANTS.items()
    }
    return grid, runs


def run_inaccurate_model() -> dict[str, dict[str, Any]]:
    """Experiment ``inaccurate-model``: MnM with an exact or an aliased model class.

    Returns:
        ``{variant: {"value": J from the start, "reaches_goal": bool}}`` for the variants
        ``mnm``, ``mnm_aliased`` and ``aliased_no_classifier``.
    """
    return _inaccurate_model_result(*_inaccurate_model_runs())


def _inaccurate_model_result(
    grid: GridWorld, runs: dict[str, IterationResult]
) -> dict[str, dict[str, Any]]:
    goal = grid.state(grid.goal)
    return {
        name: {
            "value": discounted_return(grid.mdp, run.policy),
            "reaches_goal": goal in rollout(grid, run.policy, 100),
        }
        for name, run in runs.items()
    }


# ---------------------------------------------------------------------------------------
# Plots (matplotlib imported lazily, Agg backend)
# ---------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bound_tracking(result: dict[str, Any], path: str) -> None:
    """Plot ``log J``, the bound and VMBPO's objective against the iteration.

    Args:
        result: output of :func:`run_bound_tracking`.
        path: PNG file to write.
    """
    plt = _pyplot()
    its = result["iterations"]
    x = np.arange(len(its))

    def col(key: str) -> np.ndarray:
        return np.array([np.nan if r[key] is None else r[key] for r in its])

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(x, col("log_return"), "-o", ms=3, label="log J(π) (real MDP)")
    ax.plot(x, col("bound"), "-s", ms=3, label="MnM bound L(π, q)")
    ax.plot(x, col("vmbpo_objective"), "--^", ms=3, label="log VMBPO objective (r − KL in q)")
    ax.set_xlabel("MnM iteration")
    ax.set_ylabel("log return")
    ax.set_title("Exact tabular MnM, 10×10 gridworld: the bound stays below log J")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_risk(result: dict[str, float], path: str) -> None:
    """Bar chart of the true returns of the three methods.

    Args:
        result: output of :func:`run_risk`.
        path: PNG file to write.
    """
    plt = _pyplot()
    names = ["q_learning", "mnm", "vmbpo"]
    labels = ["Q-learning\n(policy iteration, r)", "MnM\n(log r, −KL, q)", "VMBPO\n(r − KL, q)"]
    vals = [result[n] for n in names]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    bars = ax.bar(labels, vals, color=["tab:gray", "tab:blue", "tab:orange"])
    ax.bar_label(bars, fmt="%.1f")
    ax.set_ylabel("true discounted return J(π) from the start")
    ax.set_ylim(0, max(vals) * 1.15)
    ax.set_title("Risk gridworld: optimistic VMBPO takes the risky path")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_inaccurate_model(
    grid: GridWorld, runs: dict[str, IterationResult], result: dict[str, Any], path: str
) -> None:
    """The grid with each variant's 100-step real rollout of its final policy.

    Args:
        grid: the gridworld.
        runs: the runs per variant.
        result: output of :func:`run_inaccurate_model`.
        path: PNG file to write.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = _pyplot()
    titles = {
        "mnm": "MnM, exact model",
        "mnm_aliased": "MnM, aliased model",
        "aliased_no_classifier": "aliased model, no classifier",
    }
    img = np.zeros((grid.n_rows, grid.n_cols))
    for w in grid.walls:
        img[w] = 1.0
    fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 5.6))
    for ax, (name, run) in zip(axes, runs.items(), strict=True):
        ax.imshow(img, cmap="Greys", vmin=0, vmax=1.4, origin="upper")
        cells = np.array([grid.cell(s) for s in rollout(grid, run.policy, 100)])
        ax.plot(cells[:, 1], cells[:, 0], "-", color="tab:blue", lw=2)
        ax.plot(cells[-1, 1], cells[-1, 0], "o", color="tab:blue", ms=8)
        start = grid.cell(grid.mdp.start)
        ax.plot(start[1], start[0], "s", color="tab:green", ms=10)
        ax.plot(grid.goal[1], grid.goal[0], "*", color="tab:red", ms=16)
        r = result[name]
        ax.set_title(f"{titles[name]}\nJ = {r['value']:.1f}, reaches goal: {r['reaches_goal']}")
        ax.set_xticks(range(0, grid.n_cols, 3))
        ax.set_yticks(range(0, grid.n_rows, 3))
        ax.set_xticks(np.arange(-0.5, grid.n_cols, 3), minor=True)
        ax.set_yticks(np.arange(-0.5, grid.n_rows, 3), minor=True)
        ax.grid(which="minor", color="tab:gray", alpha=0.4)
        ax.set_xlabel("column j")
        ax.set_ylabel("row i")
    handles = [
        Line2D([], [], color="tab:blue", lw=2, label="100-step real rollout"),
        Line2D([], [], color="tab:blue", marker="o", ls="", label="end of rollout"),
        Line2D([], [], color="tab:green", marker="s", ls="", label="start"),
        Line2D([], [], color="tab:red", marker="*", ms=12, ls="", label="goal (r = 100)"),
        Patch(color="0.3", label="wall"),
        Line2D([], [], color="tab:gray", alpha=0.4, label="3×3 aliasing blocks"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
    fig.suptitle("Inaccurate (aliased) model: the classifier term keeps MnM on real paths")
    fig.tight_layout(rect=(0, 0.13, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------

EXPERIMENTS = ("bound-tracking", "risk", "inaccurate-model")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _summary(name: str, result: dict[str, Any]) -> str:
    if name == "bound-tracking":
        its = result["iterations"]
        first, last = its[0], its[-1]
        lines = [f"bound-tracking: {len(its)} iterates (initial one included)"]
        for label, r in (("first", first), ("last", last)):
            lines.append(
                f"  {label}: log J = {_fmt(r['log_return'])}, bound = {_fmt(r['bound'])}, "
                f"log VMBPO objective = {_fmt(r['vmbpo_objective'])}"
            )
        return "\n".join(lines)
    if name == "risk":
        return "risk (true return from the start): " + ", ".join(
            f"{k} = {v:.3f}" for k, v in result.items()
        )
    return "inaccurate-model:\n" + "\n".join(
        f"  {k}: value = {v['value']:.3f}, reaches goal = {v['reaches_goal']}"
        for k, v in result.items()
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m mbrl_bound_plugin.tabular EXPERIMENT [--json] [--plot F]``.

    Args:
        argv: arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m mbrl_bound_plugin.tabular",
        description="Exact tabular Mismatched-No-More experiments.",
    )
    parser.add_argument("experiment", choices=EXPERIMENTS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the experiment's figure")
    args = parser.parse_args(argv)

    if args.experiment == "bound-tracking":
        result = run_bound_tracking()
        if args.plot:
            plot_bound_tracking(result, args.plot)
    elif args.experiment == "risk":
        result = run_risk()
        if args.plot:
            plot_risk(result, args.plot)
    else:
        grid, runs = _inaccurate_model_runs()
        result = _inaccurate_model_result(grid, runs)
        if args.plot:
            plot_inaccurate_model(grid, runs, result, args.plot)
    print(json.dumps(result) if args.json else _summary(args.experiment, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
