"""The exact MnM lower bound, the VMBPO objective and the closed-form model step.

The bound evaluated here has an undiscounted per-step log-ratio, whose exact conditional
expectation is ``-KL(q(.|s,a) || p(.|s,a))`` (see ``docs/algorithm.md``, section "The
exact, tabular version")::

    L(pi, q) = E_{q,pi}[ sum_t gamma^t ((1 - gamma) log r(s_t, a_t) - KL_t) ] - log(1 - gamma)
"""

from __future__ import annotations

import numpy as np

from mbrl_bound_plugin.tabular.mdp import EVAL_TOL, MDP, evaluate_policy, kl_divergence


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


def exact_augmented_reward(
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

    The tabular counterpart of the deep :func:`mbrl_bound_plugin.objective.augmented_reward`:
    the discriminator's logit ``log p/q`` is replaced by its exact expectation under ``q``,
    ``-KL(q || p)``.

    Args:
        mdp: the real MDP (gives ``p``, ``r`` and ``gamma``).
        q: model ``[S, A, S]``.
        objective: ``"mnm"`` or ``"vmbpo"``.
        use_kl: whether to include the ``-KL(q || p)`` (classifier) term.
        kl_clip: if set, ``KL`` is clipped to at most this value.

    Returns:
        Reward ``[S, A]`` (``-inf`` where ``KL`` is infinite and not clipped).

    Raises:
        ValueError: for an unknown ``objective``, or ``"mnm"`` with a non-positive reward.
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


def lower_bound(
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
    reward = exact_augmented_reward(mdp, q, "mnm", True, kl_clip)
    return _objective_value(mdp, q, pi, reward, tol)


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
    return _objective_value(mdp, q, pi, exact_augmented_reward(mdp, q, "vmbpo"), tol)


def model_step(p: np.ndarray, V: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Closed-form model step ``q(s'|s,a) ∝ p(s'|s,a) exp(scale * V(s'))``.

    Per ``(s, a)`` this is the exact maximizer over distributions ``q`` of
    ``E_{s'~q}[log p(s'|s,a) - log q(s'|s,a) + scale * V(s')]``
    (``= log Z - KL(q || p exp(scale V) / Z)``); see :func:`model_step_objective`.

    - ``scale = 1`` (default) is the model step of the paper's tabular simulations: it
      maximizes the tighter form of the bound, where the log-ratio is discounted together
      with the next state (``gamma * log p/q`` next to ``gamma * V(s')``).
    - ``scale = gamma`` maximizes the form that :func:`lower_bound` evaluates, whose
      per-step ratio is undiscounted (``log p/q + gamma * V(s')``).

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
