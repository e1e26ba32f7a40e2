"""Finite, discounted MDPs and their exact quantities.

``P[s, a, s']`` is a transition table (the real dynamics ``p`` or a model ``q``),
``R[s, a]`` the reward and ``pi[s, a]`` a (possibly stochastic) policy. Policy evaluation
is the fixed-point iteration ``V <- r_pi + gamma P_pi V``; ``KL`` is an exact finite sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EVAL_TOL = 1e-6  # sup-norm change at which policy evaluation stops


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

    Raises:
        ValueError: if the reward is not finite where ``pi`` acts.
        RuntimeError: if the iteration has not converged after ``max_iter`` sweeps.
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
    """The uniform policy ``[S, A]`` of ``mdp``.

    Args:
        mdp: the MDP.

    Returns:
        ``pi[s, a] = 1 / A`` for every state and action.
    """
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
