"""The joint iterations of the paper's tabular simulations (MnM and VMBPO) and plain
policy iteration as the baseline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mbrl_bound_plugin.tabular.mdp import (
    EVAL_TOL,
    MDP,
    evaluate_policy,
    greedy_policy,
    q_values,
    uniform_policy,
)
from mbrl_bound_plugin.tabular.objectives import exact_augmented_reward, model_step

MODEL_TOL = 1e-6  # max-abs change of q at which the MnM iteration stops
SMOOTHING = 0.5  # x <- SMOOTHING * x_new + (1 - SMOOTHING) * x


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
    (:func:`~mbrl_bound_plugin.tabular.objectives.exact_augmented_reward`), take the
    greedy policy, form ``q_new ∝ p exp(V)``
    (:func:`~mbrl_bound_plugin.tabular.objectives.model_step`, then ``project`` onto the
    model class if one is given), and smooth both players,
    ``x <- smoothing * x_new + (1 - smoothing) * x``. Starts from the uniform policy and
    ``q = project(p)`` (``q = p`` for the exact class). Stops when ``q`` moves less than
    ``model_tol`` in max-abs, or after ``max_iter`` iterations.

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

    Raises:
        ValueError: if ``smoothing`` is outside ``(0, 1]``, or ``KL(q || p)`` is infinite
            and ``kl_clip`` is not set.
    """
    if not 0.0 < smoothing <= 1.0:
        raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
    pi = uniform_policy(mdp)
    q = project(mdp.P) if project is not None else mdp.P.copy()
    result = IterationResult([pi], [q])
    for _ in range(max_iter):
        reward = exact_augmented_reward(mdp, q, objective, use_kl, kl_clip)
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
