"""ScoredReplayBuffer: SAC's rows scored as they come in and when C changes, sampled as mbrl's."""

from __future__ import annotations

import mbrl.algorithms.mbpo as mbpo
import mbrl.util
import numpy as np
import pytest
import torch

from mbrl_bound_plugin.models.discriminator import Discriminator
from mbrl_bound_plugin.util import state as run_state
from mbrl_bound_plugin.util.replay_buffer import ScoredReplayBuffer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OBS_DIM, ACT_DIM = 3, 2
COLUMNS = ("obs", "act", "next_obs", "rewards", "terminateds", "truncateds")


def _discriminator(seed: int = 0) -> Discriminator:
    """A small C with weights far from their initialization (logits of a few units)."""
    torch.manual_seed(seed)
    disc = Discriminator(OBS_DIM, ACT_DIM, hid_size=16)
    with torch.no_grad():
        for p in disc.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return disc


class _Scorer:
    """``C``'s logits without gradient, as the agent scores rows; counts rows and calls."""

    def __init__(self, disc: Discriminator):
        self.disc, self.calls = disc, []

    def __call__(self, obs, act, next_obs) -> torch.Tensor:
        self.calls.append(len(obs))
        with torch.no_grad():
            return self.disc(
                *(torch.as_tensor(x, dtype=torch.float32) for x in (obs, act, next_obs))
            )


def _fresh(disc: Discriminator, batch) -> torch.Tensor:
    """A fresh discriminator call on a batch's rows."""
    with torch.no_grad():
        return disc(
            *(
                torch.as_tensor(x, dtype=torch.float32)
                for x in (batch.obs, batch.act, batch.next_obs)
            )
        )


def _rows(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, ACT_DIM)).astype(np.float32)
    next_obs = obs + rng.normal(scale=0.1, size=(n, OBS_DIM)).astype(np.float32)
    reward = rng.normal(size=n).astype(np.float32)
    return obs, act, next_obs, reward, rng.random(n) < 0.1, np.zeros(n, bool)


def _fill(buffer: mbrl.util.ReplayBuffer, sizes: tuple[int, ...] = (30, 25, 40)) -> None:
    """Adds batches of these sizes (wrapping round a buffer of capacity 64), then one row."""
    for i, n in enumerate(sizes):
        buffer.add_batch(*_rows(n, seed=i))
    obs, act, next_obs, reward, terminated, truncated = _rows(1, seed=99)
    buffer.add(obs[0], act[0], next_obs[0], float(reward[0]), bool(terminated[0]), False)


def _pair(capacity: int = 64, seed: int = 3, scorer=None):
    """A plain buffer and a scored one, each with its own generator of the same seed."""
    plain = mbrl.util.ReplayBuffer(
        capacity, (OBS_DIM,), (ACT_DIM,), rng=np.random.default_rng(seed)
    )
    scored = ScoredReplayBuffer(
        capacity, (OBS_DIM,), (ACT_DIM,), scorer=scorer, rng=np.random.default_rng(seed)
    )
    return plain, scored


def _assert_same_batch(a, b) -> None:
    for field in COLUMNS:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_rows_are_scored_as_they_come_in_and_sampled_with_their_logits():
    disc = _discriminator()
    scorer = _Scorer(disc)
    _, buffer = _pair(scorer=scorer)
    _fill(buffer)  # 96 rows into 64: the third batch wraps round
    assert len(buffer) == 64
    # each add scored its own rows, in one call each, and nothing else
    assert scorer.calls == [30, 25, 40, 1] and buffer.rows_scored == 96
    stored = torch.from_numpy(buffer.logits[:64])
    assert torch.allclose(stored, _fresh(disc, buffer.get_all()), atol=1e-6)
    for batch_size in (1, 16, 200):
        batch, logits = buffer.sample_scored(batch_size)
        assert logits.dtype == np.float32 and logits.shape == (batch_size,)
        assert torch.allclose(torch.from_numpy(logits), _fresh(disc, batch), atol=1e-6)
    assert scorer.calls == [30, 25, 40, 1]  # sampling calls no one
    assert stored.abs().max() > 0.5  # (logits far from 0: the comparisons are not vacuous)


def test_sampling_draws_what_mbrls_buffer_draws_from_the_same_generator_state():
    plain, scored = _pair(scorer=_Scorer(_discriminator()))
    _fill(plain)
    _fill(scored)
    for batch_size in (7, 32, 32, 100):
        _assert_same_batch(plain.sample(batch_size), scored.sample(batch_size))
        batch, _ = scored.sample_scored(batch_size)
        _assert_same_batch(plain.sample(batch_size), batch)
    assert plain.rng.bit_generator.state == scored.rng.bit_generator.state
    # the rows and write positions are mbrl's too
    assert (plain.cur_idx, plain.num_stored) == (scored.cur_idx, scored.num_stored)
    _assert_same_batch(plain.get_all(), scored.get_all())


def test_rescore_scores_every_row_with_the_changed_discriminator_in_chunks():
    disc = _discriminator()
    scorer = _Scorer(disc)
    _, buffer = _pair(scorer=scorer)
    buffer.chunk_size = 20
    _fill(buffer)
    with torch.no_grad():  # C changes in place, as a fit changes it
        for p in disc.parameters():
            p.mul_(-1.5)
    fresh = _fresh(disc, buffer.get_all())
    stale = torch.from_numpy(buffer.logits[:64].copy())
    assert not torch.allclose(stale, fresh, atol=1e-3)  # the stored logits are C's old ones
    scorer.calls.clear()
    buffer.rescore()
    assert scorer.calls == [20, 20, 20, 4]
    assert buffer.rows_scored == 96 + 64
    assert torch.allclose(torch.from_numpy(buffer.logits[:64]), fresh, atol=1e-6)
    batch, logits = buffer.sample_scored(50)
    assert torch.allclose(torch.from_numpy(logits), _fresh(disc, batch), atol=1e-6)


def test_without_a_scorer_the_logits_are_zero_until_one_is_given():
    _, buffer = _pair()
    _fill(buffer)
    assert buffer.rows_scored == 0 and not buffer.logits.any()
    disc = _discriminator()
    buffer.scorer = _Scorer(disc)
    buffer.rescore()
    batch, logits = buffer.sample_scored(32)
    assert torch.allclose(torch.from_numpy(logits), _fresh(disc, batch), atol=1e-6)
    # a row written without a scorer gets 0, not what its index held before
    buffer.scorer = None
    buffer.add_batch(*_rows(10, seed=7))
    written = (buffer.cur_idx - 10 + np.arange(10)) % buffer.capacity
    assert not buffer.logits[written].any()


@pytest.mark.parametrize("new_capacity", [128, 64, 40])
def test_a_replaced_buffer_keeps_mbrls_rows_order_and_generator_and_is_scored(new_capacity):
    """mbrl's ``maybe_replace_sac_buffer`` then ``from_buffer``: what the loop does when the
    rollout length changes (bigger, the same rows in a smaller buffer, a wrap)."""
    disc = _discriminator()
    plain, scored = _pair(capacity=48, scorer=_Scorer(disc))
    _fill(plain)
    _fill(scored)
    mbrls = mbpo.maybe_replace_sac_buffer(plain, (OBS_DIM,), (ACT_DIM,), new_capacity, seed=0)
    ours = mbpo.maybe_replace_sac_buffer(scored, (OBS_DIM,), (ACT_DIM,), new_capacity, seed=0)
    assert (ours is scored) == (new_capacity == 48)
    ours = ScoredReplayBuffer.from_buffer(ours, scorer=_Scorer(disc))
    assert type(mbrls) is mbrl.util.ReplayBuffer
    assert ours.rng is scored.rng  # the generator goes on, as mbrl passes it
    assert (ours.capacity, ours.cur_idx, ours.num_stored) == (
        mbrls.capacity,
        mbrls.cur_idx,
        mbrls.num_stored,
    )
    _assert_same_batch(ours.get_all(), mbrls.get_all())
    n = len(ours)
    assert torch.allclose(
        torch.from_numpy(ours.logits[:n]), _fresh(disc, ours.get_all()), atol=1e-6
    )
    assert ours.rows_scored == n
    for _ in range(3):
        batch, logits = ours.sample_scored(24)
        _assert_same_batch(batch, mbrls.sample(24))
        assert torch.allclose(torch.from_numpy(logits), _fresh(disc, batch), atol=1e-6)
    # and the next rows overwrite the same places in both
    mbrls.add_batch(*_rows(30, seed=11))
    ours.add_batch(*_rows(30, seed=11))
    _assert_same_batch(ours.get_all(), mbrls.get_all())
    n = len(ours)
    assert torch.allclose(
        torch.from_numpy(ours.logits[:n]), _fresh(disc, ours.get_all()), atol=1e-6
    )


def test_from_buffer_of_an_empty_buffer_scores_nothing():
    scorer = _Scorer(_discriminator())
    empty = mbpo.maybe_replace_sac_buffer(None, (OBS_DIM,), (ACT_DIM,), 16, seed=5)
    scored = ScoredReplayBuffer.from_buffer(empty, scorer=scorer)
    assert len(scored) == 0 and scorer.calls == [] and scored.rng is empty.rng
    # the generator mbrl seeded: the first draws are a plain buffer's of that seed
    scored.add_batch(*_rows(10, seed=1))
    plain = mbrl.util.ReplayBuffer(16, (OBS_DIM,), (ACT_DIM,), rng=np.random.default_rng(5))
    plain.add_batch(*_rows(10, seed=1))
    _assert_same_batch(scored.sample(8), plain.sample(8))


def test_refusals():
    with pytest.raises(ValueError, match="chunk_size"):
        ScoredReplayBuffer(8, (OBS_DIM,), (ACT_DIM,), chunk_size=0)
    with_trajectories = mbrl.util.ReplayBuffer(8, (OBS_DIM,), (ACT_DIM,), max_trajectory_length=4)
    with pytest.raises(ValueError, match="trajectories"):
        ScoredReplayBuffer.from_buffer(with_trajectories)


def test_its_state_keeps_the_logits_and_a_state_without_them_is_scored_on_loading():
    disc = _discriminator()
    _, buffer = _pair(scorer=_Scorer(disc))
    _fill(buffer)
    state = run_state.state_dict(buffer)
    np.testing.assert_array_equal(state["logits"], buffer.logits[:64])
    same = ScoredReplayBuffer(64, (OBS_DIM,), (ACT_DIM,), scorer=_Scorer(disc))
    run_state.load_state_dict(same, state)
    np.testing.assert_array_equal(same.logits, buffer.logits)  # put back, not recomputed
    assert same.scorer.calls == []
    _assert_same_batch(same.sample(32), buffer.sample(32))  # (rows, position and rng too)
    # a plain buffer's state: the rows are scored on loading
    plain = {k: v for k, v in state.items() if k != "logits"}
    rescored = ScoredReplayBuffer(64, (OBS_DIM,), (ACT_DIM,), scorer=_Scorer(disc))
    run_state.load_state_dict(rescored, plain)
    assert rescored.scorer.calls == [64]
    np.testing.assert_allclose(rescored.logits, buffer.logits, rtol=1e-6, atol=1e-6)
    # another capacity: the newest rows are added, so scored
    smaller = ScoredReplayBuffer(40, (OBS_DIM,), (ACT_DIM,), scorer=_Scorer(disc))
    run_state.load_state_dict(smaller, state)
    assert smaller.scorer.calls == [40] and len(smaller) == 40
    assert torch.allclose(
        torch.from_numpy(smaller.logits[:40]), _fresh(disc, smaller.get_all()), atol=1e-6
    )


def test_invalidate_scores_only_the_rows_still_stale_at_the_next_draw():
    """After C changes, rows overwritten before SAC draws are scored once, as added; the
    draw scores the rest, once; every drawn logit is the changed C's."""
    disc = _discriminator()
    scorer = _Scorer(disc)
    _, buffer = _pair(scorer=scorer)
    buffer.add_batch(*_rows(64, seed=0))  # full: capacity 64
    with torch.no_grad():
        for p in disc.parameters():
            p.mul_(-1.5)
    buffer.invalidate()
    assert buffer.stale[:64].all()
    scorer.calls.clear()
    buffer.add_batch(*_rows(40, seed=1))  # overwrites rows 0-39: scored now, not stale
    assert scorer.calls == [40] and buffer.stale[:64].sum() == 24
    batch, logits = buffer.sample_scored(50)
    assert scorer.calls == [40, 24] and not buffer.stale.any()  # the 24 left, once
    assert torch.allclose(torch.from_numpy(logits), _fresh(disc, batch), atol=1e-6)
    assert torch.allclose(
        torch.from_numpy(buffer.logits), _fresh(disc, buffer.get_all()), atol=1e-6
    )
    buffer.sample_scored(50)
    assert scorer.calls == [40, 24]  # nothing stale: no more scoring


def test_saved_state_keeps_which_rows_are_stale():
    disc = _discriminator()
    _, buffer = _pair(scorer=_Scorer(disc))
    buffer.add_batch(*_rows(64, seed=0))
    buffer.invalidate()
    buffer.add_batch(*_rows(10, seed=1))
    state = run_state.state_dict(buffer)
    _, loaded = _pair(scorer=_Scorer(disc))
    run_state.load_state_dict(loaded, state)
    np.testing.assert_array_equal(loaded.stale, buffer.stale)
    np.testing.assert_array_equal(loaded.logits, buffer.logits)
    assert loaded.scorer.calls == []
