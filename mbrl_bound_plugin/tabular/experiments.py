"""The paper's three tabular experiments, as functions that return plain data.

- ``bound-tracking`` (:func:`run_bound_tracking`): the bound, ``log J`` and VMBPO's
  objective along MnM's iterations on a noisy 10x10 gridworld.
- ``risk`` (:func:`run_risk`): the true return of the policies of policy iteration,
  MnM and VMBPO on a gridworld with a safe and a slippery reward.
- ``inaccurate-model`` (:func:`run_inaccurate_model`): MnM with an exact or an aliased
  model class, with and without the classifier (``-KL``) term.

The results are JSON-serializable (dicts of floats, bools and ``None``); the figures are
drawn by :mod:`mbrl_bound_plugin.tabular.plots`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mbrl_bound_plugin.tabular.gridworlds import (
    GridWorld,
    aliased_projection,
    bound_tracking_gridworld,
    inaccurate_model_gridworld,
    risk_gridworld,
    rollout,
)
from mbrl_bound_plugin.tabular.iteration import IterationResult, joint_iteration, policy_iteration
from mbrl_bound_plugin.tabular.mdp import discounted_return, log_return
from mbrl_bound_plugin.tabular.objectives import lower_bound, vmbpo_objective


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _log_or_none(x: float) -> float | None:
    return float(np.log(x)) if np.isfinite(x) and x > 0 else None


def run_bound_tracking() -> dict[str, Any]:
    """Experiment ``bound-tracking``: the bound, ``log J`` and VMBPO's objective along MnM.

    Runs MnM on :func:`~mbrl_bound_plugin.tabular.gridworlds.bound_tracking_gridworld`
    and, for every (smoothed) policy and model of the run (initial ones included),
    reports ``log J`` in the real MDP, the bound ``L`` (``None`` if not finite) and the log
    of VMBPO's objective (``None`` if not positive).

    Returns:
        ``{"iterations": [{"log_return", "bound", "vmbpo_objective"}, ...]}``.
    """
    mdp = bound_tracking_gridworld().mdp
    run = joint_iteration(mdp, "mnm")
    rows = [
        {
            "log_return": log_return(mdp, pi),
            "bound": _finite(lower_bound(mdp, q, pi)),
            "vmbpo_objective": _log_or_none(vmbpo_objective(mdp, q, pi)),
        }
        for pi, q in zip(run.policies, run.models, strict=True)
    ]
    return {"iterations": rows}


def run_risk() -> dict[str, float]:
    """Experiment ``risk``: true return of Q-learning's, MnM's and VMBPO's final policies.

    "Q-learning" is policy iteration on the real MDP with the plain reward.

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
"""The variants of ``inaccurate-model``: aliased model class or not, ``-KL`` term or not."""


def inaccurate_model_runs() -> tuple[GridWorld, dict[str, IterationResult]]:
    """The MnM runs of ``inaccurate-model``, one per variant of :data:`INACCURATE_VARIANTS`.

    Each run has 20 iterations, ``KL`` clipped at 5, and the
    :func:`~mbrl_bound_plugin.tabular.gridworlds.aliased_projection` (3x3 blocks) as its
    model class when the variant is aliased.

    Returns:
        The gridworld and the run of each variant (kept for the figure).
    """
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


def inaccurate_model_result(
    grid: GridWorld, runs: dict[str, IterationResult]
) -> dict[str, dict[str, Any]]:
    """Summarize the runs of :func:`inaccurate_model_runs`.

    Args:
        grid: the gridworld.
        runs: the run of each variant.

    Returns:
        ``{variant: {"value": J from the start, "reaches_goal": bool}}``, where
        ``reaches_goal`` tells whether a 100-step real rollout of the final policy visits
        the goal.
    """
    goal = grid.state(grid.goal)
    return {
        name: {
            "value": discounted_return(grid.mdp, run.policy),
            "reaches_goal": goal in rollout(grid, run.policy, 100),
        }
        for name, run in runs.items()
    }


def run_inaccurate_model() -> dict[str, dict[str, Any]]:
    """Experiment ``inaccurate-model``: MnM with an exact or an aliased model class.

    Returns:
        ``{variant: {"value": J from the start, "reaches_goal": bool}}`` for the variants
        ``mnm``, ``mnm_aliased`` and ``aliased_no_classifier``.
    """
    return inaccurate_model_result(*inaccurate_model_runs())
