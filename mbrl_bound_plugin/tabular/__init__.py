"""The exact, tabular version of the Mismatched-No-More (MnM) lower bound.

In a finite MDP every quantity of the bound is exact: the true dynamics ``p`` and the
model ``q`` are tables ``[S, A, S]``, ``KL(q || p)`` is a finite sum, policy evaluation is
a linear fixed point and the model step has a closed form. The derivation is in
``docs/algorithm.md``, section "The exact, tabular version".

Conventions. ``P[s, a, s']`` and ``q[s, a, s']`` are transition tables, ``R[s, a]`` the
reward, ``pi[s, a]`` a policy. The bound has an undiscounted per-step log-ratio, whose
exact conditional expectation is ``-KL(q(.|s,a) || p(.|s,a))``::

    L(pi, q) = E_{q,pi}[ sum_t gamma^t ((1 - gamma) log r(s_t, a_t) - KL_t) ] - log(1 - gamma)

This package exports the library; it is numpy-only (no torch, no mbrl, no matplotlib):

- :mod:`~mbrl_bound_plugin.tabular.mdp`: :class:`MDP`, ``KL``, policy evaluation, greedy
  and uniform policies, ``J`` and ``log J`` in the real MDP;
- :mod:`~mbrl_bound_plugin.tabular.gridworlds`: :class:`GridWorld`, the gridworlds of the
  experiments, the aliased model class and rollouts;
- :mod:`~mbrl_bound_plugin.tabular.objectives`: the bound :func:`lower_bound`, the VMBPO
  objective, the reward of the policy step and the closed-form model step;
- :mod:`~mbrl_bound_plugin.tabular.iteration`: the joint MnM / VMBPO iteration and policy
  iteration.

The paper's experiments live in :mod:`~mbrl_bound_plugin.tabular.experiments`, their
figures in :mod:`~mbrl_bound_plugin.tabular.plots` (matplotlib, without ``pyplot``), and
the command line in :mod:`~mbrl_bound_plugin.tabular.cli`::

    python -m mbrl_bound_plugin.tabular {bound-tracking,risk,inaccurate-model} [--json]
        [--plot FILE.png]
"""

from mbrl_bound_plugin.tabular.gridworlds import (
    DOWN,
    FIVE_MOVES,
    FOUR_MOVES,
    LEFT,
    RIGHT,
    STAY,
    UP,
    GridWorld,
    aliased_projection,
    bound_tracking_gridworld,
    inaccurate_model_gridworld,
    make_gridworld,
    risk_gridworld,
    rollout,
)
from mbrl_bound_plugin.tabular.iteration import (
    MODEL_TOL,
    SMOOTHING,
    IterationResult,
    joint_iteration,
    policy_iteration,
)
from mbrl_bound_plugin.tabular.mdp import (
    EVAL_TOL,
    MDP,
    discounted_return,
    evaluate_policy,
    greedy_policy,
    kl_divergence,
    log_return,
    q_values,
    uniform_policy,
)
from mbrl_bound_plugin.tabular.objectives import (
    exact_augmented_reward,
    lower_bound,
    model_step,
    model_step_objective,
    vmbpo_objective,
)

__all__ = [
    # mdp
    "EVAL_TOL",
    "MDP",
    "discounted_return",
    "evaluate_policy",
    "greedy_policy",
    "kl_divergence",
    "log_return",
    "q_values",
    "uniform_policy",
    # gridworlds
    "DOWN",
    "FIVE_MOVES",
    "FOUR_MOVES",
    "LEFT",
    "RIGHT",
    "STAY",
    "UP",
    "GridWorld",
    "aliased_projection",
    "bound_tracking_gridworld",
    "inaccurate_model_gridworld",
    "make_gridworld",
    "risk_gridworld",
    "rollout",
    # objectives
    "exact_augmented_reward",
    "lower_bound",
    "model_step",
    "model_step_objective",
    "vmbpo_objective",
    # iteration
    "MODEL_TOL",
    "SMOOTHING",
    "IterationResult",
    "joint_iteration",
    "policy_iteration",
]
