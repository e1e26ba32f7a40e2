"""BoundSACAgent: SAC's value, and the reward it relabels SAC's batches with."""

from __future__ import annotations

import math
import types

import gymnasium as gym
import mbrl.util
import numpy as np
import pytest
import torch
from mbrl.third_party.pytorch_sac_pranz24.sac import SAC

from mbrl_bound_plugin.errors import NumericalError
from mbrl_bound_plugin.planning.sac_agent import BoundSACAgent
from mbrl_bound_plugin.util.replay_buffer import ScoredReplayBuffer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OBS_DIM, ACT_DIM = 3, 2


def _sac(alpha: float = 0.3, seed: int = 0) -> SAC:
    torch.manual_seed(seed)
    args = types.SimpleNamespace(
        gamma=0.9,
        tau=0.005,
        alpha=alpha,
        policy="Gaussian",
        target_update_interval=1,
        automatic_entropy_tuning=False,
        target_entropy=None,
        hidden_size=16,
        device="cpu",
        lr=1e-3,
    )
    space = gym.spaces.Box(-1.0, 1.0, shape=(ACT_DIM,), dtype=np.float32)
    return SAC(OBS_DIM, space, args)


def _agent(**kwargs) -> BoundSACAgent:
    kwargs.setdefault("gamma", 0.9)
    kwargs.setdefault("ratio_centering", False)  # (the uncentered term, unless a test asks)
    return BoundSACAgent(_sac(), **kwargs)


def _buffer(
    num_rows: int = 64,
    reward: float | np.ndarray = 0.5,
    seed: int = 0,
    cls: type[mbrl.util.ReplayBuffer] = mbrl.util.ReplayBuffer,
    **kwargs,
):
    rng = np.random.default_rng(seed)
    buffer = cls(num_rows, (OBS_DIM,), (ACT_DIM,), rng=rng, **kwargs)
    rewards = np.broadcast_to(reward, (num_rows,))
    for i in range(num_rows):
        obs = rng.normal(size=OBS_DIM).astype(np.float32)
        act = rng.uniform(-1, 1, size=ACT_DIM).astype(np.float32)
        buffer.add(obs, act, obs + 0.1 * act[0], float(rewards[i]), False, False)
    return buffer


def _constant_logit(value: float):
    def discriminator(obs, act, next_obs):
        return torch.full(next_obs.shape[:-1], value)

    return discriminator


# --- V(s) = E_{a~pi}[min(Q1, Q2)(s, a) - alpha log pi(a|s)] ---


@pytest.mark.parametrize("alpha", [0.3, "tensor"])
def test_value_is_min_q_minus_alpha_log_pi_at_a_policy_sample(alpha):
    agent = _agent()
    sac = agent.sac_agent
    if alpha == "tensor":  # what automatic entropy tuning leaves: a tensor with a graph
        sac.log_alpha = torch.tensor([math.log(0.7)], requires_grad=True)
        sac.alpha = sac.log_alpha.exp()
    obs = torch.randn(2, 5, OBS_DIM, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(123)
    value = agent.value(obs)
    # by hand, with the same draw of a ~ pi(.|s)
    torch.manual_seed(123)
    flat = obs.reshape(10, OBS_DIM)
    act, log_pi, _ = sac.policy.sample(flat)
    q1, q2 = sac.critic(flat, act)
    a = float(torch.as_tensor(sac.alpha).detach())
    expected = (torch.minimum(q1, q2) - a * log_pi).reshape(2, 5)
    assert value.shape == (2, 5)
    torch.testing.assert_close(value, expected)
    # the two critics and the entropy term all matter here (the check is not vacuous)
    assert (q1 != q2).all()
    assert not torch.allclose(value, torch.minimum(q1, q2).reshape(2, 5), atol=1e-3)


def test_value_averages_to_the_expectation_over_the_policy():
    agent = _agent()
    sac = agent.sac_agent
    obs = torch.randn(1, OBS_DIM, generator=torch.Generator().manual_seed(2))
    many = obs.expand(20_000, OBS_DIM)
    torch.manual_seed(5)
    estimate = agent.value(many).mean()
    torch.manual_seed(6)  # an independent Monte Carlo estimate of E[min Q - alpha log pi]
    act, log_pi, _ = sac.policy.sample(many)
    q1, q2 = sac.critic(many, act)
    expected = (torch.minimum(q1, q2) - sac.alpha * log_pi).mean()
    assert estimate.item() == pytest.approx(expected.item(), abs=0.02)


def test_value_is_differentiable_in_obs():
    agent = _agent()
    obs = torch.randn(4, OBS_DIM, requires_grad=True)
    agent.value(obs).sum().backward()
    assert obs.grad is not None and obs.grad.abs().sum() > 0


# --- the augmented reward SAC trains on ---


def test_sac_batches_use_the_current_discriminator():
    agent = _agent(lam=1.0, clip=10.0)
    buffer = _buffer(reward=0.0)
    agent.set_discriminator(_constant_logit(1.0))
    agent.update(buffer, 16, 0)
    assert agent.pop_bound_reward() == pytest.approx(10.0 * math.tanh(0.1), rel=1e-5)
    # after set_discriminator(new), the very next batch reads the new one
    agent.set_discriminator(_constant_logit(-2.0))
    agent.update(buffer, 16, 1)
    assert agent.pop_bound_reward() == pytest.approx(10.0 * math.tanh(-0.2), rel=1e-5)


def test_sac_batches_are_scored_at_their_own_transitions():
    agent = _agent(lam=1.0, clip=100.0)
    buffer = _buffer(reward=0.0)
    rows = buffer.get_all()
    seen = []

    def discriminator(obs, act, next_obs):
        seen.append((obs, act, next_obs))
        return (next_obs - obs).sum(-1)  # = 0.1 * act[0] * OBS_DIM at buffer rows

    agent.set_discriminator(discriminator)
    rt = agent.augmented_reward(rows.obs, rows.act, rows.next_obs, rows.rewards)
    obs, act, next_obs = seen[0]
    np.testing.assert_array_equal(obs.numpy(), rows.obs)
    np.testing.assert_array_equal(act.numpy(), rows.act)
    np.testing.assert_array_equal(next_obs.numpy(), rows.next_obs)
    expected = 100.0 * np.tanh(0.1 * OBS_DIM * rows.act[:, 0] / 100.0)
    np.testing.assert_allclose(rt.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_without_a_ratio_term_sac_gets_the_batches_as_sampled():
    """``lam = 0`` in mode ``scaled`` is MBPO's reward: no discriminator call, no copy."""
    agent = _agent(lam=0.0)
    assert not agent.uses_ratio and not agent.changes_reward
    calls = []
    agent.set_discriminator(lambda *args: calls.append(args) or torch.zeros(16))
    sampled = []
    buffer = _buffer(reward=np.linspace(0.0, 1.0, 64))
    original_sample = buffer.sample
    buffer.sample = lambda n: sampled.append(original_sample(n)) or sampled[-1]
    seen = []
    original_update = agent.sac_agent.update_parameters
    agent.sac_agent.update_parameters = lambda memory, *a, **k: original_update(
        types.SimpleNamespace(sample=lambda n: seen.append(memory.sample(n)) or seen[-1]), *a, **k
    )
    agent.update(buffer, 16, 0)
    assert calls == [] and seen[0] is sampled[0]  # the very batch the buffer gave
    assert agent.pop_bound_reward() == pytest.approx(sampled[0].rewards.mean())
    # any ratio weight, or mode bound's log transform, does change the reward
    assert _agent(lam=0.1).changes_reward
    assert _agent(mode="bound", reward_floor=-1.0).changes_reward


def test_real_batches_get_no_ratio_term():
    agent = _agent(lam=1.0, clip=10.0)
    agent.set_discriminator(_constant_logit(3.0))
    buffer = _buffer(reward=0.5)
    agent.update(buffer, 16, 0, model_data=False)
    assert agent.pop_bound_reward() == pytest.approx(0.5)  # f(r) = r, nothing more
    rows = buffer.get_all()
    rt = agent.augmented_reward(rows.obs, rows.act, rows.next_obs, rows.rewards, model_data=False)
    np.testing.assert_allclose(rt.numpy(), rows.rewards)
    agent.pop_bound_reward()
    # the same rows as model data do get it
    agent.update(buffer, 16, 1, model_data=True)
    assert agent.pop_bound_reward() == pytest.approx(0.5 + 10.0 * math.tanh(0.3))


def test_the_ratio_scale_reads_model_rewards_only():
    agent = _agent(lam=1.0, clip=10.0, scale="reward_rms")
    agent.set_discriminator(_constant_logit(3.0))
    agent.update(_buffer(reward=7.0), 16, 0, model_data=False)
    assert agent.state_dict()["reward_moments"] is None
    agent.pop_bound_reward()
    agent.update(_buffer(reward=0.5), 16, 1, model_data=True)
    # weight: lam times the rms 0.5 of the model rewards (the real 7.0 are not in it)
    assert agent.ratio_weight() == pytest.approx(0.5)
    assert agent.pop_bound_reward() == pytest.approx(0.5 + 0.5 * 10.0 * math.tanh(0.3))


def test_bound_mode_real_batches_get_the_log_reward_only():
    agent = _agent(mode="bound", reward_floor=-1.0, clip=5.0)
    agent.set_discriminator(_constant_logit(2.0))
    rows = _buffer(reward=np.linspace(0.0, 1.0, 64)).get_all()
    real = agent.augmented_reward(rows.obs, rows.act, rows.next_obs, rows.rewards, False)
    model = agent.augmented_reward(rows.obs, rows.act, rows.next_obs, rows.rewards, True)
    f_r = 0.1 * np.log(rows.rewards + 1.0)
    np.testing.assert_allclose(real.numpy(), f_r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.numpy(), f_r + 5.0 * math.tanh(2.0 / 5.0), rtol=1e-5)


def test_warmup_ramps_the_ratio_weight_linearly_over_the_epochs():
    agent = _agent(lam=0.4, clip=10.0, warmup_epochs=2)
    agent.set_discriminator(_constant_logit(1.0))
    rows = _buffer(reward=0.0).get_all()
    for epochs_done, fraction in ((0, 0.0), (1, 0.5), (2, 1.0), (5, 1.0)):
        agent.set_epoch(epochs_done)
        assert agent.ratio_weight() == pytest.approx(0.4 * fraction)
        rt = agent.augmented_reward(rows.obs, rows.act, rows.next_obs, rows.rewards)
        expected = 0.4 * fraction * 10.0 * math.tanh(0.1)
        np.testing.assert_allclose(rt.numpy(), expected, rtol=1e-5, atol=1e-7)
        # the model step reads the same term
        assert agent.ratio_term(torch.tensor([1.0])).item() == pytest.approx(expected, abs=1e-7)
    assert agent.state_dict()["epochs_done"] == 5


def test_bound_mode_warms_up_from_weight_zero_to_one():
    agent = _agent(mode="bound", reward_floor=-1.0, warmup_epochs=4)
    weights = []
    for n in range(6):
        agent.set_epoch(n)
        weights.append(agent.ratio_weight())
    assert weights == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0])


@pytest.mark.parametrize("scale", ["reward_std", "reward_rms"])
def test_scale_multiplies_the_weight_by_the_running_reward_moment(scale):
    agent = _agent(lam=0.5, clip=10.0, scale=scale)
    agent.set_discriminator(_constant_logit(1.0))
    assert agent.ratio_weight() == 0.0  # no model reward seen yet
    obs, act = np.zeros((4, OBS_DIM), np.float32), np.zeros((4, ACT_DIM), np.float32)
    first = np.array([0.0, 4.0, 0.0, 4.0], np.float32)  # mean 2, mean square 8, std 2
    rt = agent.augmented_reward(obs, act, obs, first)
    moment = 2.0 if scale == "reward_std" else math.sqrt(8.0)
    assert agent.ratio_weight() == pytest.approx(0.5 * moment)
    # this batch is already scored with its own moments
    np.testing.assert_allclose(rt.numpy(), first + 0.5 * moment * 10.0 * math.tanh(0.1), rtol=1e-5)
    # later batches move the moments by 1% each
    second = np.array([10.0, 10.0, 10.0, 10.0], np.float32)  # mean 10, mean square 100
    agent.augmented_reward(obs, act, obs, second)
    mean, square = 0.99 * 2.0 + 0.01 * 10.0, 0.99 * 8.0 + 0.01 * 100.0
    moment = math.sqrt(square - mean**2) if scale == "reward_std" else math.sqrt(square)
    assert agent.ratio_weight() == pytest.approx(0.5 * moment, rel=1e-6)
    assert agent.state_dict()["reward_moments"] == pytest.approx((mean, square))


def test_scale_none_ignores_the_rewards():
    agent = _agent(lam=0.5, clip=10.0)
    obs, act = np.zeros((2, OBS_DIM), np.float32), np.zeros((2, ACT_DIM), np.float32)
    agent.augmented_reward(obs, act, obs, np.array([0.0, 100.0], np.float32))
    assert agent.ratio_weight() == 0.5


@pytest.mark.parametrize("scale", ["reward_std", "reward_rms"])
def test_bound_mode_refuses_a_ratio_scale(scale):
    with pytest.raises(ValueError, match="scale=none"):
        _agent(mode="bound", reward_floor=-1.0, scale=scale)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": "reward_max"}, "scale must be one of"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"warmup_epochs": 1.5}, "warmup_epochs"),
        ({"lam": -0.1}, "lam must be >= 0"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _agent(**kwargs)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_augmented_reward_is_refused_and_not_counted(bad):
    agent = _agent(lam=1.0, clip=10.0)
    agent.set_discriminator(_constant_logit(3.0))
    obs, act = np.zeros((2, OBS_DIM), np.float32), np.zeros((2, ACT_DIM), np.float32)
    agent.augmented_reward(obs, act, obs, np.array([0.5, 1.5], np.float32))
    with pytest.raises(NumericalError, match="augmented reward is not finite"):
        agent.augmented_reward(obs, act, obs, np.array([0.5, bad], np.float32))
    # the refused batch is not in the mean reward SAC trained on
    assert agent.pop_bound_reward() == pytest.approx(1.0 + 10.0 * math.tanh(0.3))


def test_state_dict_round_trip_keeps_moments_warmup_and_pending_reward():
    agent = _agent(lam=0.5, scale="reward_std", warmup_epochs=3)
    agent.set_discriminator(_constant_logit(1.0))
    agent.set_epoch(2)
    obs, act = np.zeros((2, OBS_DIM), np.float32), np.zeros((2, ACT_DIM), np.float32)
    agent.augmented_reward(obs, act, obs, np.array([1.0, 3.0], np.float32))
    fresh = _agent(lam=0.5, scale="reward_std", warmup_epochs=3)
    fresh.load_state_dict(agent.state_dict())
    assert fresh.ratio_weight() == pytest.approx(agent.ratio_weight())
    assert fresh.ratio_weight() == pytest.approx(0.5 * 1.0 * 2 / 3)
    assert fresh.pop_bound_reward() == pytest.approx(agent.pop_bound_reward())


# --- model batches scored ahead, in one discriminator call per environment step ---


def _counting(fn):
    calls = []

    def counted(obs, act, next_obs):
        calls.append(len(obs))
        return fn(obs, act, next_obs)

    return counted, calls


def _served_batches(agent: BoundSACAgent) -> list:
    """Replaces SAC's update with one that records the batch it was given."""
    seen = []
    agent.sac_agent.update_parameters = lambda memory, batch_size, *a, **k: (
        seen.append(memory.sample(batch_size)) or np.zeros(5)
    )
    return seen


def test_batches_ahead_scores_the_steps_batches_in_one_discriminator_call():
    agent = _agent(lam=1.0, clip=100.0)
    discriminator, calls = _counting(lambda o, a, n: (n - o).sum(-1) * 10.0)
    agent.set_discriminator(discriminator)
    seen = _served_batches(agent)
    buffer = _buffer(reward=np.linspace(0.0, 1.0, 64))
    with agent.batches_ahead(buffer, 16, 3):
        for i in range(3):
            agent.update(buffer, 16, i)
    assert calls == [48]  # one call for the three batches
    assert len(seen) == 3 and all(len(b) == 16 for b in seen)
    # each batch carries the reward of its own rows, as one-by-one relabelling gives
    for batch in seen:
        one_by_one = _agent(lam=1.0, clip=100.0)
        one_by_one.set_discriminator(lambda o, a, n: (n - o).sum(-1) * 10.0)
        stored = buffer.get_all()
        rows = [int(np.flatnonzero((stored.obs == o).all(1))[0]) for o in batch.obs]
        expected = one_by_one.augmented_reward(
            batch.obs, batch.act, batch.next_obs, stored.rewards[rows]
        )
        np.testing.assert_allclose(batch.rewards, expected.numpy(), rtol=1e-6)
    # a fourth update, outside the block, scores its own batch
    agent.update(buffer, 16, 3)
    assert calls == [48, 16]


def test_batches_ahead_unused_batches_are_dropped_and_real_batches_not_served_from_them():
    agent = _agent(lam=1.0)
    discriminator, calls = _counting(_constant_logit(0.5))
    agent.set_discriminator(discriminator)
    seen = _served_batches(agent)
    model_buffer, real_buffer = _buffer(seed=0), _buffer(seed=1)
    with agent.batches_ahead(model_buffer, 8, 4):
        agent.update(real_buffer, 8, 0, model_data=False)
        agent.update(model_buffer, 8, 1)
    assert calls == [32]
    real_obs = real_buffer.get_all().obs
    assert all(any((real_obs == o).all(1)) for o in seen[0].obs)  # from the real buffer
    assert agent._ahead is None
    agent.update(model_buffer, 8, 2)
    assert calls == [32, 8]


def test_batches_ahead_draws_nothing_without_a_ratio_term_or_a_discriminator():
    buffer = _buffer()
    drawn = []
    original = buffer.sample
    buffer.sample = lambda n: drawn.append(n) or original(n)
    no_ratio = _agent(lam=0.0)
    no_ratio.set_discriminator(_constant_logit(1.0))
    with no_ratio.batches_ahead(buffer, 16, 3):
        pass
    with _agent(lam=1.0).batches_ahead(buffer, 16, 3):  # no discriminator yet
        pass
    assert drawn == []


# --- model batches from a ScoredReplayBuffer: the logits it stores, no discriminator call ---


def _row_logit(obs, act, next_obs):
    """A discriminator whose logit differs from row to row (a few units)."""
    return torch.as_tensor((next_obs - obs).sum(-1) * 10.0 + 3.0 * act[:, 0])


@pytest.mark.parametrize("ahead", [False, True])
def test_a_scored_buffer_gives_sac_the_rewards_of_a_discriminator_call(ahead):
    """Same seed, same rows: the batches and rewards SAC sees from the scored buffer are
    those of relabelling by calling C, and C is called only when rows are stored."""
    rewards = np.linspace(0.0, 1.0, 64)
    plain = _buffer(reward=rewards, seed=4)
    uncached = _agent(mode="bound", reward_floor=-1.0, clip=5.0)
    plain_calls_to = _counting(_row_logit)
    uncached.set_discriminator(plain_calls_to[0])
    cached = _agent(mode="bound", reward_floor=-1.0, clip=5.0)
    discriminator, calls = _counting(_row_logit)
    cached.set_discriminator(discriminator)
    scored = _buffer(reward=rewards, seed=4, cls=ScoredReplayBuffer, scorer=cached.logits)
    assert calls == [1] * 64  # each row scored as it was added
    calls.clear()
    seen = {}
    for name, agent, buffer in (("plain", uncached, plain), ("scored", cached, scored)):
        seen[name] = _served_batches(agent)
        with agent.batches_ahead(buffer, 16, 3 if ahead else 0):
            for i in range(3):
                agent.update(buffer, 16, i)
    assert calls == []  # SAC's updates read the stored logits
    assert plain_calls_to[1] == ([48] if ahead else [16, 16, 16])
    for without, with_cache in zip(seen["plain"], seen["scored"], strict=True):
        for field in ("obs", "act", "next_obs", "terminateds"):
            np.testing.assert_array_equal(getattr(with_cache, field), getattr(without, field))
        np.testing.assert_allclose(with_cache.rewards, without.rewards, rtol=1e-6, atol=1e-7)
        assert np.ptp(without.rewards) > 0.5  # (rewards differ from row to row)
    assert cached.pop_bound_reward() == pytest.approx(uncached.pop_bound_reward(), rel=1e-6)


def test_a_scored_buffers_stale_logits_are_what_sac_reads():
    """SAC trusts the stored logits: a discriminator changed without a rescore of the
    buffer is not seen (keeping them current is the buffer owner's job, BoundRun's)."""
    agent = _agent(lam=1.0, clip=100.0)
    agent.set_discriminator(_constant_logit(1.0))
    buffer = _buffer(reward=0.0, cls=ScoredReplayBuffer, scorer=agent.logits)
    agent.set_discriminator(_constant_logit(-2.0))
    agent.update(buffer, 16, 0)
    assert agent.pop_bound_reward() == pytest.approx(100.0 * math.tanh(0.01), rel=1e-5)
    buffer.rescore()
    agent.update(buffer, 16, 1)
    assert agent.pop_bound_reward() == pytest.approx(100.0 * math.tanh(-0.02), rel=1e-5)
    # real batches from it get no ratio term
    agent.update(buffer, 16, 2, model_data=False)
    assert agent.pop_bound_reward() == 0.0


@pytest.mark.parametrize("ahead", [False, True])
def test_relabelling_stored_logits_leaves_sacs_device_alone(ahead):
    """Rows with stored logits are relabelled on the CPU, where SAC takes its NumPy
    batches: nothing goes to SAC's device and back (on a GPU, a wait per SAC update).
    SAC's device is set to ``meta`` here, where any tensor put there has no value."""
    agent = _agent(lam=1.0, clip=5.0, scale="reward_std")  # (the scale reads the rewards too)
    agent.set_discriminator(_row_logit)
    buffer = _buffer(reward=np.linspace(0.0, 1.0, 64), seed=4, cls=ScoredReplayBuffer)
    buffer.scorer = agent.logits  # scored now, on the CPU
    buffer.rescore()
    agent.sac_agent.device = torch.device("meta")
    seen = _served_batches(agent)
    with agent.batches_ahead(buffer, 16, 2 if ahead else 0):
        for i in range(2):
            agent.update(buffer, 16, i)
    assert [b.rewards.dtype for b in seen] == [np.float32, np.float32]
    assert all(np.isfinite(b.rewards).all() and np.ptp(b.rewards) > 0.1 for b in seen)


def test_policy_ratio_off_keeps_the_models_ratio_term_and_not_sacs():
    """The model-term-only ablation: SAC trains on f(r) without calling C; the model step's
    ``ratio_term`` is unchanged (same weight as with the policy term on)."""
    agent = _agent(lam=0.5, clip=10.0, policy_ratio=False)
    calls = []
    agent.set_discriminator(lambda *args: calls.append(args) or torch.full((16,), 3.0))
    assert not agent.uses_ratio and not agent.changes_reward
    agent.update(_buffer(reward=0.5), 16, 0)
    assert calls == [] and agent.pop_bound_reward() == pytest.approx(0.5)
    logit = torch.tensor([3.0, -1.0])
    on = _agent(lam=0.5, clip=10.0)
    torch.testing.assert_close(agent.ratio_term(logit), on.ratio_term(logit))
    assert agent.ratio_term(logit)[0].item() == pytest.approx(0.5 * 10.0 * math.tanh(0.3))


def test_policy_ratio_off_in_bound_mode_gives_the_log_reward_only():
    agent = _agent(mode="bound", reward_floor=-1.0, clip=5.0, policy_ratio=False)
    agent.set_discriminator(_constant_logit(2.0))
    assert agent.changes_reward and not agent.uses_ratio
    rows = _buffer(reward=np.linspace(0.0, 1.0, 64)).get_all()
    rt = agent.augmented_reward(rows.obs, rows.act, rows.next_obs, rows.rewards, True)
    np.testing.assert_allclose(rt.numpy(), (1 - 0.9) * np.log(rows.rewards + 1.0), rtol=1e-5)
    assert agent.ratio_term(torch.tensor([2.0])).item() == pytest.approx(5.0 * math.tanh(0.4))


def test_policy_ratio_off_still_tracks_the_ratio_scale_for_the_model():
    agent = _agent(lam=1.0, clip=10.0, scale="reward_rms", policy_ratio=False)
    agent.update(_buffer(reward=0.5), 16, 0, model_data=True)
    assert agent.ratio_weight() == pytest.approx(0.5)  # lam x rms of the model rewards
    agent.update(_buffer(reward=7.0), 16, 1, model_data=False)
    assert agent.ratio_weight() == pytest.approx(0.5)  # real rewards are not in it


def test_policy_ratio_must_be_a_bool():
    with pytest.raises(ValueError, match="policy_ratio"):
        _agent(policy_ratio="no")


# --- ratio centering: a saturated log-ratio must not make terminating pay ---


def _terminating_batch_targets(agent: BoundSACAgent, reward: float) -> tuple[float, float]:
    """SAC's targets ``rt + gamma (1 - done) V`` for an alive and a terminal transition.

    Half the batch is alive, half terminal, every reward ``reward``, and the discriminator
    is saturated (a constant, very negative logit). ``V`` at the alive next state is the
    value of staying alive forever under the same reward, ``rt / (1 - gamma)``.
    """
    agent.set_discriminator(_constant_logit(-1e4))
    rows = 8
    obs = np.zeros((rows, OBS_DIM), dtype=np.float32)
    act = np.zeros((rows, ACT_DIM), dtype=np.float32)
    rt = agent.augmented_reward(obs, act, obs, np.full(rows, reward, dtype=np.float32))
    done = np.arange(rows) % 2 == 1
    gamma = agent.gamma
    value = float(rt[~done].mean()) / (1.0 - gamma)
    targets = rt.numpy() + gamma * (1.0 - done) * value
    return float(targets[~done].mean()), float(targets[done].mean())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "scaled", "lam": 0.5, "clip": 10.0},  # lam * c = 5 > the reward 1
        {"mode": "bound", "clip": 10.0, "reward_floor": -1.0},  # c = 10 > (1-gamma) log 2
    ],
)
def test_centering_keeps_the_alive_versus_terminal_order_of_no_ratio_term(kwargs):
    no_ratio = _terminating_batch_targets(_agent(**kwargs, policy_ratio=False), 1.0)
    raw = _terminating_batch_targets(_agent(**kwargs), 1.0)
    centered = _terminating_batch_targets(_agent(**kwargs, ratio_centering=True), 1.0)
    assert no_ratio[0] > no_ratio[1]  # staying alive is worth more than ending
    assert raw[0] < raw[1]  # uncentered, the saturated ratio makes ending pay
    assert centered[0] > centered[1]
    np.testing.assert_allclose(centered, no_ratio, rtol=1e-5)


def test_centering_keeps_relative_realism_and_leaves_real_batches_alone():
    agent = _agent(lam=0.5, clip=10.0, ratio_centering=True)
    logits = torch.tensor([-4.0, -2.0, 0.0, 2.0])
    agent.set_discriminator(lambda obs, act, next_obs: logits[: len(obs)])
    obs = np.zeros((4, OBS_DIM), dtype=np.float32)
    act = np.zeros((4, ACT_DIM), dtype=np.float32)
    reward = np.full(4, 1.0, dtype=np.float32)
    g = 0.5 * 10.0 * np.tanh(logits.numpy() / 10.0)
    rt = agent.augmented_reward(obs, act, obs, reward)
    np.testing.assert_allclose(rt.numpy(), 1.0 + g - g.mean(), rtol=1e-6)
    real = agent.augmented_reward(obs, act, obs, reward, model_data=False)
    np.testing.assert_allclose(real.numpy(), reward)


def test_ratio_centering_must_be_a_bool():
    with pytest.raises(ValueError, match="ratio_centering must be true or false"):
        _agent(ratio_centering="yes")


def test_rollout_calibration_is_the_mean_exp_logit_of_sacs_model_rows():
    agent = _agent(lam=0.5)
    assert math.isnan(agent.pop_rollout_calibration())  # no discriminator yet
    logits = torch.tensor([0.0, math.log(3.0), -math.log(2.0), math.log(0.5)])
    agent.set_discriminator(lambda obs, act, next_obs: logits[: len(obs)])
    obs = np.zeros((4, OBS_DIM), dtype=np.float32)
    act = np.zeros((4, ACT_DIM), dtype=np.float32)
    reward = np.zeros(4, dtype=np.float32)
    agent.augmented_reward(obs[:2], act[:2], obs[:2], reward[:2])  # exp: 1, 3
    agent.augmented_reward(obs, act, obs, reward, model_data=False)  # real rows: not counted
    state = agent.state_dict()
    agent.augmented_reward(obs, act, obs, reward)  # exp: 1, 3, 0.5, 0.5
    assert agent.pop_rollout_calibration() == pytest.approx((1 + 3 + 1 + 3 + 0.5 + 0.5) / 6)
    assert math.isnan(agent.pop_rollout_calibration())  # popped
    agent.load_state_dict(state)  # a checkpoint keeps what is pending
    assert agent.pop_rollout_calibration() == pytest.approx(2.0)
