"""Bridge from the exact tabular MnM to the deep code: the discriminator's logit is log p/q.

On the ``bound-tracking`` grid both ``p`` and a fixed model ``q`` are tables, so the
log-ratio ``log p(s'|s,a) - log q(s'|s,a)`` that the deep algorithm estimates with
:class:`~mbrl_bound_plugin.models.discriminator.Discriminator` is known exactly. The test trains
the discriminator on one-hot ``(s, a, s')`` samples (real ``s' ~ p``, model ``s' ~ q`` at
the same rows, as in deep algorithm step 1) and checks that its logits recover the exact
log-ratio on every visited transition, that they do so far better than before training and
than the log-ratio of a nearby wrong model would allow, and that the discriminator's
held-out KL estimate matches the exact mean ``KL(q || p)`` (see ``docs/algorithm.md``).
"""

import numpy as np
import pytest
import torch

from mbrl_bound_plugin.models.discriminator import Discriminator
from mbrl_bound_plugin.tabular import bound_tracking_gridworld, kl_divergence

SEED = 0
NUM_ROWS = 40_000  # (s, a) rows, each with one real and one model next state
# Cells of the 10x10 grid whose (s, a) pairs are sampled (all four actions each): a
# corner (off-grid moves stay put), a cell left of the wall (moving right stays put), a
# cell below the wall (moving up stays put), an interior cell and the goal (a corner).
CELLS = ((0, 0), (3, 3), (6, 4), (8, 7), (0, 9))
# q(.|s,a) = MIX * p(.|s,a) + (1 - MIX) * p(.|s,a+1): the model confuses each action with
# the next one. Every action of the noisy grid reaches every neighbour with probability
# >= 0.125, so q and p have the same support and log p/q is finite; on the interior it
# takes the values log(0.625/0.275) = 0.82 (intended move), log(0.125/0.475) = -1.34
# (next action's move) and 0 (the other two), with other values where moves merge.
MIX = 0.3
MIN_COUNT = 300  # every visited transition has about 440 or more (real + model) samples

# Tolerances, in nats. A logit can at best recover the empirical log(n_p / n_q) of its
# transition's counts, whose standard error sqrt(1/n_p + 1/n_q) is about 0.09 for the
# rarest transitions (~450 samples) and 0.06 for the common ones (~1100): that sampling
# floor alone gives a weighted mean absolute error of about 0.04 and a max of 0.14-0.30.
# Over seeds 0-9 the trained discriminator measured 0.043-0.060 (weighted mean) and
# 0.19-0.30 (max). MEAN_TOL / MAX_TOL leave a margin of 1.7x or more, and stay well below
# the untrained error (logits near 0: 0.69-0.78 on average, more than 3x MEAN_TOL) and
# the error against the log-ratio of a nearby wrong model (WRONG_MIX: 0.19-0.22).
MEAN_TOL = 0.1
MAX_TOL = 0.5
WRONG_MIX = 0.5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(p: np.ndarray, mix: float) -> np.ndarray:
    """``q[:, a] = mix * p[:, a] + (1 - mix) * p[:, a + 1]`` (action indices mod 4)."""
    return mix * p + (1.0 - mix) * np.roll(p, -1, axis=1)


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sampled states, the real ``p`` and the fixed model ``q`` (both ``[S, A, S]``)."""
    grid = bound_tracking_gridworld()
    p = grid.mdp.P
    q = _model(p, MIX)
    states = np.array([grid.state(c) for c in CELLS])
    assert not any(c in grid.walls for c in CELLS)
    return states, p, q


def _sample_next(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One index per row of ``probs`` (``N x S``), by inverting the row's CDF."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cdf[:, -1]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), probs.shape[1] - 1)


def _samples(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``NUM_ROWS`` uniform ``(s, a)`` rows and, per row, ``s' ~ p`` and ``ŝ' ~ q``."""
    states, p, q = _tables()
    rng = np.random.default_rng(seed)
    s = states[rng.integers(len(states), size=NUM_ROWS)]
    a = rng.integers(p.shape[1], size=NUM_ROWS)
    return s, a, _sample_next(rng, p[s, a]), _sample_next(rng, q[s, a])


def _one_hot(idx: np.ndarray, n: int) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[idx]


def _disc(n_states: int, n_actions: int) -> Discriminator:
    # weight_decay 0: the logit must reach the unregularized optimum log p/q
    return Discriminator(
        obs_dim=n_states,
        act_dim=n_actions,
        hid_size=32,
        num_layers=2,
        lr=3e-4,
        weight_decay=0.0,
        batch_size=512,
        num_updates=3000,
        holdout_ratio=0.1,
    )


def _logit_errors(disc: Discriminator, s, a, s_real, s_model, p, q):
    """Per visited transition: ``|logit - log p/q|`` and its number of (real + model) visits."""
    visited = np.concatenate(
        [np.stack([s, a, s_real], axis=1), np.stack([s, a, s_model], axis=1)], axis=0
    )
    trans, counts = np.unique(visited, axis=0, return_counts=True)
    ts, ta, tn = trans.T
    # q shares p's support, so every visited transition has p > 0 and q > 0
    assert (p[ts, ta, tn] > 0).all() and (q[ts, ta, tn] > 0).all()
    exact = np.log(p[ts, ta, tn]) - np.log(q[ts, ta, tn])
    S, A = p.shape[:2]
    with torch.no_grad():
        logits = disc(
            torch.from_numpy(_one_hot(ts, S)),
            torch.from_numpy(_one_hot(ta, A)),
            torch.from_numpy(_one_hot(tn, S)),
        ).numpy()
    return np.abs(logits - exact), counts, exact


def test_discriminator_logits_recover_exact_tabular_log_ratio():
    torch.manual_seed(SEED)
    states, p, q = _tables()
    S, A = p.shape[:2]
    s, a, s_real, s_model = _samples(SEED)
    disc = _disc(S, A)

    # teeth: before training the logits are far from log p/q
    err0, counts, exact = _logit_errors(disc, s, a, s_real, s_model, p, q)
    assert len(counts) >= 60  # many distinct transitions, with varied log-ratios
    assert exact.max() > 0.5 and exact.min() < -1.0
    untrained_mean = np.average(err0, weights=counts)
    assert untrained_mean > 3 * MEAN_TOL, untrained_mean

    stats = disc.fit(
        _one_hot(s, S),
        _one_hot(a, A),
        _one_hot(s_real, S),
        _one_hot(s_model, S),
        generator=torch.Generator().manual_seed(SEED),
    )
    err, counts, _ = _logit_errors(disc, s, a, s_real, s_model, p, q)
    mean_err = np.average(err, weights=counts)
    assert counts.min() >= MIN_COUNT, counts.min()
    assert mean_err < MEAN_TOL, mean_err
    assert err.max() < MAX_TOL, err.max()

    # teeth: the same logits miss the log-ratio of a nearby wrong model by more than MEAN_TOL
    wrong_err, _, _ = _logit_errors(disc, s, a, s_real, s_model, p, _model(p, WRONG_MIX))
    wrong_mean = np.average(wrong_err, weights=counts)
    assert wrong_mean > MEAN_TOL, wrong_mean

    # the held-out KL estimate matches the exact mean KL(q || p) = 0.354 over the sampled
    # (s, a) pairs (seeds 0-9: within 0.02)
    kl = kl_divergence(q[states], p[states]).mean()
    assert stats["kl_estimate"] == pytest.approx(kl, abs=0.05)
