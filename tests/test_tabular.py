"""Tests of the exact tabular MnM library (``mbrl_bound_plugin.tabular``) and its experiments.

The building blocks (KL, policy evaluation, the bound, the model step, the gridworlds and
the aliased model class) are checked against values computed by hand or by a linear solve.
The experiment tests check the qualitative claims of the paper's simulations (the bound
stays below ``log J`` along MnM, MnM avoids the risky path that VMBPO takes, the
classifier term keeps MnM on real paths with an aliased model), not numbers printed by
the code. The command line is tested in ``test_tabular_cli.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import mbrl_bound_plugin.tabular as tb
from mbrl_bound_plugin.tabular import experiments


def _random_mdp(rng: np.random.Generator, S: int, A: int, sparse: bool) -> tb.MDP:
    P = rng.dirichlet(np.ones(S), size=(S, A))
    if sparse:  # zero out some next states, keep at least one
        mask = rng.random((S, A, S)) < 0.4
        mask[..., 0] = False
        P = np.where(mask, 0.0, P)
        P /= P.sum(-1, keepdims=True)
    R = rng.uniform(0.1, 5.0, size=(S, A))
    return tb.MDP(P=P, R=R, gamma=float(rng.uniform(0.5, 0.95)), start=0)


# --------------------------------------------------------------------------- KL


def test_kl_hand_made_distributions() -> None:
    assert tb.kl_divergence([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    # 0 log 0 = 0: the empty outcome of q contributes nothing
    assert tb.kl_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert tb.kl_divergence([0.0, 1.0, 0.0], [0.25, 0.5, 0.25]) == pytest.approx(math.log(2))
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert tb.kl_divergence([0.25, 0.75], [0.5, 0.5]) == pytest.approx(expected)
    # both zero on the same outcome: still finite
    assert tb.kl_divergence([0.0, 1.0], [0.0, 1.0]) == pytest.approx(0.0)
    # q puts mass outside the support of p
    assert tb.kl_divergence([0.5, 0.5], [1.0, 0.0]) == math.inf


def test_kl_is_per_row() -> None:
    q = np.array([[[1.0, 0.0], [0.5, 0.5]]])
    p = np.array([[[0.5, 0.5], [0.5, 0.5]]])
    np.testing.assert_allclose(tb.kl_divergence(q, p), [[math.log(2), 0.0]])


# ------------------------------------------------------------- policy evaluation


def test_policy_evaluation_one_state() -> None:
    P = np.ones((1, 2, 1))
    R = np.array([[2.0, 4.0]])
    pi = np.array([[0.25, 0.75]])
    V = tb.evaluate_policy(P, R, pi, gamma=0.9)
    assert V[0] == pytest.approx(3.5 / (1 - 0.9), abs=1e-4)


def test_policy_evaluation_two_states() -> None:
    # state 0 -> state 1 (reward a), state 1 absorbing (reward b)
    a, b, g = 3.0, 1.0, 0.8
    P = np.array([[[0.0, 1.0]], [[0.0, 1.0]]])
    R = np.array([[a], [b]])
    V = tb.evaluate_policy(P, R, np.ones((2, 1)), gamma=g)
    np.testing.assert_allclose(V, [a + g * b / (1 - g), b / (1 - g)], atol=1e-4)


def test_policy_evaluation_two_state_cycle() -> None:
    # 0 <-> 1 deterministic: V0 = (r0 + g r1) / (1 - g^2)
    r0, r1, g = 2.0, 5.0, 0.9
    P = np.array([[[0.0, 1.0]], [[1.0, 0.0]]])
    V = tb.evaluate_policy(P, np.array([[r0], [r1]]), np.ones((2, 1)), gamma=g)
    np.testing.assert_allclose(
        V, [(r0 + g * r1) / (1 - g**2), (r1 + g * r0) / (1 - g**2)], atol=1e-4
    )


def test_policy_evaluation_matches_linear_solve() -> None:
    rng = np.random.default_rng(0)
    mdp = _random_mdp(rng, 6, 3, sparse=False)
    pi = rng.dirichlet(np.ones(3), size=6)
    V = tb.evaluate_policy(mdp.P, mdp.R, pi, mdp.gamma)
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    exact = np.linalg.solve(np.eye(6) - mdp.gamma * P_pi, (pi * mdp.R).sum(1))
    tol = 1e-6 * mdp.gamma / (1 - mdp.gamma)  # error bound of the stopping rule
    np.testing.assert_allclose(V, exact, atol=tol)


# --------------------------------------------------------------------- the bound


@pytest.mark.parametrize("sparse", [False, True])
def test_bound_below_log_return_on_random_mdps(sparse: bool) -> None:
    rng = np.random.default_rng(1 + sparse)
    for _ in range(40):
        S, A = int(rng.integers(2, 6)), int(rng.integers(1, 4))
        mdp = _random_mdp(rng, S, A, sparse)
        pi = rng.dirichlet(np.ones(A), size=S)
        # a random model inside the support of p (else the bound is -inf)
        q = np.where(mdp.P > 0, rng.dirichlet(np.ones(S), size=(S, A)), 0.0)
        q /= q.sum(-1, keepdims=True)
        L, logJ = tb.lower_bound(mdp, q, pi), tb.log_return(mdp, pi)
        assert np.isfinite(L)
        assert L <= logJ + 1e-6
        # q = p is a model too
        assert tb.lower_bound(mdp, mdp.P, pi) <= logJ + 1e-6


def test_bound_is_tight_for_constant_reward_and_true_model() -> None:
    # r = c, q = p: L = (1-g) log c / (1-g) - log(1-g) = log(c / (1-g)) = log J
    rng = np.random.default_rng(3)
    mdp = _random_mdp(rng, 4, 2, sparse=False)
    mdp = tb.MDP(mdp.P, np.full((4, 2), 3.0), mdp.gamma, 0)
    pi = rng.dirichlet(np.ones(2), size=4)
    expected = math.log(3.0 / (1 - mdp.gamma))
    assert tb.log_return(mdp, pi) == pytest.approx(expected, abs=1e-5)
    assert tb.lower_bound(mdp, mdp.P, pi) == pytest.approx(expected, abs=1e-4)


def test_bound_is_minus_inf_when_model_leaves_support_where_policy_goes() -> None:
    # state 0 -> state 1 surely; the model claims state 0 half of the time
    P = np.array([[[0.0, 1.0]], [[0.0, 1.0]]])
    mdp = tb.MDP(P, np.ones((2, 1)), 0.9, 0)
    q = np.array([[[0.5, 0.5]], [[0.0, 1.0]]])
    assert tb.lower_bound(mdp, q, np.ones((2, 1))) == -math.inf
    assert tb.lower_bound(mdp, q, np.ones((2, 1)), kl_clip=5.0) > -math.inf


# ------------------------------------------------------------------ model step


@pytest.mark.parametrize("scale_name", ["one", "gamma"])
def test_model_step_maximizes_its_inner_objective(scale_name: str) -> None:
    """``q ∝ p exp(scale V)`` maximizes ``E_q[log p - log q + scale V]``.

    ``scale = 1`` is the closed form of the paper's tabular simulations (the tighter bound
    that discounts the ratio with the next state); ``scale = gamma`` maximizes the form
    with an undiscounted ratio, the one ``lower_bound`` evaluates. Each is checked against
    the objective it maximizes.
    """
    rng = np.random.default_rng(4)
    gamma = 0.9
    scale = 1.0 if scale_name == "one" else gamma
    S, A = 6, 3
    p = rng.dirichlet(np.ones(S), size=(S, A))
    p[0, 0, :3] = 0.0  # some zeros in p
    p /= p.sum(-1, keepdims=True)
    V = rng.normal(scale=3.0, size=S)
    q_star = tb.model_step(p, V, scale)
    np.testing.assert_allclose(q_star.sum(-1), 1.0)
    assert (q_star[p == 0] == 0).all()
    for s in range(S):
        for a in range(A):
            best = tb.model_step_objective(q_star[s, a], p[s, a], V, scale)
            for _ in range(30):
                # random perturbation of q inside the simplex
                noise = rng.dirichlet(np.ones(S))
                eps = rng.uniform(1e-3, 0.5)
                q = (1 - eps) * q_star[s, a] + eps * noise
                assert tb.model_step_objective(q, p[s, a], V, scale) < best
                # multiplicative perturbation of the logits, support kept
                q2 = q_star[s, a] * np.exp(rng.normal(scale=0.3, size=S))
                q2 /= q2.sum()
                assert tb.model_step_objective(q2, p[s, a], V, scale) <= best + 1e-12


def test_model_step_scale_one_is_not_the_undiscounted_maximizer() -> None:
    # the two closed forms differ: each is strictly worse on the other's objective
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(4))[None, None, :]
    V, gamma = np.array([0.0, 1.0, 2.0, 3.0]), 0.9
    q1, qg = tb.model_step(p, V, 1.0)[0, 0], tb.model_step(p, V, gamma)[0, 0]
    p0 = p[0, 0]
    assert tb.model_step_objective(qg, p0, V, gamma) > tb.model_step_objective(q1, p0, V, gamma)
    assert tb.model_step_objective(q1, p0, V, 1.0) > tb.model_step_objective(qg, p0, V, 1.0)


# ------------------------------------------------------------------ gridworlds


def test_bound_tracking_gridworld_dynamics() -> None:
    grid = tb.bound_tracking_gridworld()
    P = grid.mdp.P
    up, right, down, left = range(4)
    s = grid.state((5, 2))  # open cell, no walls around
    assert P[s, up, grid.state((4, 2))] == pytest.approx(0.625)
    for nxt in [(5, 3), (6, 2), (5, 1)]:
        assert P[s, up, grid.state(nxt)] == pytest.approx(0.125)
    # corner (0, 0): up and left are clipped to the grid (stay put)
    s0 = grid.state((0, 0))
    assert P[s0, up, s0] == pytest.approx(0.625 + 0.125)
    # (2, 3) beside the wall (2, 4): moving right stays put
    s = grid.state((2, 3))
    assert P[s, right, s] == pytest.approx(0.625)
    assert P[:, :, grid.state((2, 4))][s].sum() == 0.0
    assert grid.mdp.R[grid.state((0, 9))].tolist() == [10.0] * 4
    assert grid.mdp.start == 0 and grid.mdp.gamma == 0.9


def test_risk_gridworld_dynamics() -> None:
    grid = tb.risk_gridworld()
    P, R = grid.mdp.P, grid.mdp.R
    up, right, down, left = range(4)
    c0, c1, c2 = (grid.state((0, j)) for j in range(3))
    assert P[c1, left, c0] == 1.0 and P[c1, right, c2] == 1.0 and P[c0, down, c0] == 1.0
    assert P[c2, up, c2] == pytest.approx(0.5) and P[c2, up, c1] == pytest.approx(0.5)
    assert P[c2, left, c1] == pytest.approx(1.0)
    assert R[c0, 0] == 50 and R[c1, 0] == 1 and R[c2, 0] == 51
    assert grid.mdp.start == c1


def test_aliased_projection() -> None:
    grid = tb.inaccurate_model_gridworld()
    q = tb.aliased_projection(grid)(grid.mdp.P)
    np.testing.assert_allclose(q.sum(-1), 1.0)
    up, right, down, left, stay = range(5)
    # open interior block (rows 9-11, cols 3-5): the aliased model is exact
    s = grid.state((10, 4))
    np.testing.assert_array_equal(q[s], grid.mdp.P[s])
    # block rows 0-2, cols 6-8: "right" is blocked in column 6 and free in column 8,
    # so the model says 50/50 and, from (0, 6), puts mass on the wall cell (0, 7)
    s = grid.state((0, 6))
    assert q[s, right, grid.state((0, 7))] == pytest.approx(0.5)
    assert q[s, right, s] == pytest.approx(0.5)
    assert math.isinf(tb.kl_divergence(q[s, right], grid.mdp.P[s, right]))


# ------------------------------------------------------------------ experiments


@pytest.fixture(scope="module")
def bound_tracking() -> list[dict]:
    return experiments.run_bound_tracking()["iterations"]


def test_bound_tracking_bound_below_log_return(bound_tracking: list[dict]) -> None:
    assert len(bound_tracking) > 2
    for row in bound_tracking:
        assert row["bound"] <= row["log_return"]


def test_bound_tracking_log_return_non_decreasing(bound_tracking: list[dict]) -> None:
    log_j = np.array([row["log_return"] for row in bound_tracking])
    assert (np.diff(log_j) >= -1e-6).all()
    assert log_j[-1] > log_j[0] + 0.01  # and MnM does improve the real return


def test_bound_tracking_vmbpo_objective_overestimates(bound_tracking: list[dict]) -> None:
    assert any(
        row["vmbpo_objective"] is not None and row["vmbpo_objective"] > row["log_return"]
        for row in bound_tracking
    )


def test_risk_claims() -> None:
    result = experiments.run_risk()
    # the optimum by hand: go left once, then collect 50 forever: 1 + 0.9 * 50 / 0.1
    assert result["q_learning"] == pytest.approx(1 + 0.9 * 50 / 0.1, rel=1e-6)
    assert result["mnm"] == pytest.approx(result["q_learning"], rel=1e-5)
    assert result["vmbpo"] < result["q_learning"] - 1.0


def test_inaccurate_model_claims() -> None:
    result = experiments.run_inaccurate_model()
    assert result["mnm"]["reaches_goal"]
    assert result["mnm_aliased"]["reaches_goal"]
    assert not result["aliased_no_classifier"]["reaches_goal"]
