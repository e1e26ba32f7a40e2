"""The model's budgeted optimism at rollout time (``models.optimism``, the wrapper's ``sample``)."""

from __future__ import annotations

import math

import mbrl.models
import numpy as np
import pytest
import torch
from conftest import TINY_BOUND

from mbrl_bound_plugin import compose
from mbrl_bound_plugin.algorithms.bound_run import create_bound_model
from mbrl_bound_plugin.errors import UsageError
from mbrl_bound_plugin.models.model_wrapper import BoundTransitionRewardModel
from mbrl_bound_plugin.models.optimism import BudgetedOptimism

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OBS_DIM, ACT_DIM, ROWS, GAMMA = 3, 1, 12, 0.9
W = torch.tensor([1.0, -2.0, 0.5])  # V(s') = W . s'


def _linear_value(next_obs):
    return next_obs @ W


def _model() -> BoundTransitionRewardModel:
    torch.manual_seed(0)
    ensemble = mbrl.models.GaussianMLP(
        in_size=OBS_DIM + ACT_DIM,
        out_size=OBS_DIM + 1,  # learned rewards: the last output is not tilted
        device="cpu",
        num_layers=2,
        ensemble_size=3,
        hid_size=16,
        propagation_method="random_model",
    )
    model = BoundTransitionRewardModel(
        ensemble, target_is_delta=True, normalize=False, learned_rewards=True
    )
    ensemble.set_elite([0, 1, 2])
    return model


def _rows(seed: int = 0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(ROWS, OBS_DIM)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(ROWS, ACT_DIM)).astype(np.float32)
    return obs, torch.as_tensor(act)


def _sample(model: BoundTransitionRewardModel, tilt: BudgetedOptimism | None, seed: int = 1):
    """``model.sample`` with the global and the model's generators seeded alike."""
    obs, act = _rows()
    model.set_optimism(tilt)
    rng = torch.Generator().manual_seed(seed)
    state = model.reset(torch.as_tensor(obs), rng=rng)
    torch.manual_seed(seed)  # (mbrl's random_model propagation draws from the global one)
    with torch.no_grad():  # as in mbrl's ModelEnv.step
        next_obs, reward, _, _ = model.sample(act, state, deterministic=False, rng=rng)
    return next_obs, reward


def _member_sigma(model: BoundTransitionRewardModel, seed: int = 1) -> torch.Tensor:
    """Each row's member standard deviation on the next-observation outputs."""
    obs, act = _rows()
    torch.manual_seed(seed)
    with torch.no_grad():
        _, logvar = model.model.forward(model._get_model_input(obs, act))
    return torch.exp(0.5 * logvar[:, :OBS_DIM])


@pytest.mark.parametrize("method", ["mean_shift", "resample"])
def test_a_zero_budget_is_mbrls_sample_itself(method):
    model = _model()
    plain = _sample(model, None)
    tilt = BudgetedOptimism(method, 0.0)
    tilt.set_value(_linear_value, GAMMA, None)
    assert not tilt.active
    for ours, theirs in zip(_sample(model, tilt), plain, strict=True):
        assert torch.equal(ours, theirs)


def test_mean_shift_moves_each_sample_by_sigma_sqrt_2eps_u_and_spends_eps():
    eps = 0.08
    model = _model()
    plain_obs, plain_reward = _sample(model, None)
    tilt = BudgetedOptimism("mean_shift", eps)
    tilt.set_value(_linear_value, GAMMA, None)
    tilted_obs, tilted_reward = _sample(model, tilt)
    assert tilted_obs.shape == (ROWS, OBS_DIM) and tilted_reward.shape == (ROWS, 1)
    sigma = _member_sigma(model)
    u = sigma * W / (sigma * W).norm(dim=-1, keepdim=True)
    expected = sigma * math.sqrt(2 * eps) * u
    torch.testing.assert_close(tilted_obs - plain_obs, expected, rtol=1e-4, atol=1e-6)
    assert torch.equal(tilted_reward, plain_reward)  # the reward output is not tilted
    kl = 0.5 * ((tilted_obs - plain_obs) / sigma).pow(2).sum(-1)
    torch.testing.assert_close(kl, torch.full((ROWS,), eps), rtol=1e-3, atol=0)
    stats = tilt.pop_stats()
    assert stats["optimism_kl"] == pytest.approx(eps, rel=1e-5)
    # linear V: the gain is gamma W . delta exactly, eta = gamma ||sigma W|| / sqrt(2 eps)
    gain = (GAMMA * (expected @ W)).mean().item()
    assert stats["optimism_value_gain"] == pytest.approx(gain, rel=1e-3)
    eta = (GAMMA * (sigma * W).norm(dim=-1) / math.sqrt(2 * eps)).mean().item()
    assert stats["optimism_eta"] == pytest.approx(eta, rel=1e-4)
    assert math.isnan(tilt.pop_stats()["optimism_kl"])  # popped


def test_mean_shift_leaves_terminal_next_states_where_they_are():
    model = _model()
    plain = _sample(model, None)
    tilt = BudgetedOptimism("mean_shift", 0.5)
    tilt.set_value(_linear_value, GAMMA, lambda act, next_obs: torch.ones(len(act), 1).bool())
    for ours, theirs in zip(_sample(model, tilt), plain, strict=True):
        assert torch.equal(ours, theirs)  # V = 0 there: grad V = 0, no shift
    assert tilt.pop_stats()["optimism_kl"] == 0.0


def test_resample_with_a_budget_of_log_k_keeps_the_best_of_k_draws():
    k = 8
    model = _model()
    tilt = BudgetedOptimism("resample", math.log(k), num_samples=k)
    tilt.set_value(_linear_value, GAMMA, None)
    tilted_obs, _ = _sample(model, tilt, seed=3)
    # the same draws by hand: member means from the same propagation, then K normals
    obs, act = _rows()
    torch.manual_seed(3)
    with torch.no_grad():
        mean, logvar = model.model.forward(model._get_model_input(obs, act))
    rng = torch.Generator().manual_seed(3)
    noise = torch.randn((k, *mean.shape), generator=rng)
    draws = torch.as_tensor(obs) + (mean + torch.exp(0.5 * logvar) * noise)[..., :OBS_DIM]
    best = draws[(draws @ W).argmax(0), torch.arange(ROWS)]
    torch.testing.assert_close(tilted_obs, best)
    stats = tilt.pop_stats()
    assert stats["optimism_kl"] == pytest.approx(math.log(k))
    assert stats["optimism_eta"] == 0.0  # capped: all weight on the best draw
    gain = (GAMMA * ((best @ W) - (draws @ W).mean(0))).mean().item()
    assert stats["optimism_value_gain"] == pytest.approx(gain, rel=1e-4)


def test_resample_spends_the_budget_and_raises_the_value():
    model = _model()
    tilt = BudgetedOptimism("resample", 0.3, num_samples=32)
    tilt.set_value(_linear_value, GAMMA, None)
    _sample(model, tilt)
    stats = tilt.pop_stats()
    assert stats["optimism_kl"] == pytest.approx(0.3, rel=1e-6)
    assert stats["optimism_value_gain"] > 0
    assert 0 < stats["optimism_eta"] < math.inf


def test_unrecorded_samples_are_not_counted_and_the_pending_sums_round_trip():
    model = _model()
    tilt = BudgetedOptimism("resample", 0.3)
    tilt.set_value(_linear_value, GAMMA, None)
    with tilt.unrecorded():
        _sample(model, tilt)
    assert math.isnan(tilt.pop_stats()["optimism_kl"])
    _sample(model, tilt)
    copy = BudgetedOptimism("resample", 0.3)
    copy.load_state_dict(tilt.state_dict())
    assert copy.pop_stats() == tilt.pop_stats()


# --- the run's model: built from algorithm.optimism ---

PENDULUM = ["algorithm=bound", "overrides=mbpo_inv_pendulum_v5", "device=cpu", *TINY_BOUND]


def test_with_optimism_the_model_trains_by_nll_alone():
    plain = create_bound_model(compose([*PENDULUM, "algorithm.optimism.method=none"]), (4,), (1,))
    assert plain.beta == 0.1 and plain.optimism is None
    cfg = compose(
        [*PENDULUM, "algorithm.optimism.method=resample", "algorithm.optimism.kl_budget=0"]
    )
    model = create_bound_model(cfg, (4,), (1,))
    assert model.beta == 0.0  # mbrl's training and validation score, as in MBPO
    assert model.optimism.method == "resample" and not model.optimism.tilts  # eps = 0


def test_a_deterministic_model_refuses_a_budget():
    cfg = compose(
        [
            *PENDULUM,
            "dynamics_model.deterministic=true",
            "algorithm.optimism.method=mean_shift",
            "algorithm.optimism.kl_budget=0.1",
        ]
    )
    with pytest.raises(UsageError, match="kl_budget=0.1 needs a model with a variance"):
        create_bound_model(cfg, (4,), (1,))
    cfg.algorithm.optimism.kl_budget = 0.0  # no tilt: nothing to refuse
    create_bound_model(cfg, (4,), (1,))


def test_bad_optimism_settings_name_the_key():
    with pytest.raises(UsageError, match="algorithm.optimism.method='greedy': use one of none"):
        compose([*PENDULUM, "algorithm.optimism.method=greedy"])
    cfg = compose(PENDULUM)
    cfg.algorithm.optimism.method = "greedy"  # (as a launcher's process gets it: checked again)
    with pytest.raises(UsageError, match="algorithm.optimism: method must be one of"):
        create_bound_model(cfg, (4,), (1,))


def test_values_without_gradient_are_taken_in_chunks(monkeypatch):
    import mbrl_bound_plugin.models.optimism as module

    monkeypatch.setattr(module, "_VALUE_CHUNK", 5)
    calls = []

    def value(next_obs):
        calls.append(len(next_obs))
        return _linear_value(next_obs)

    model = _model()
    tilt = BudgetedOptimism("resample", math.log(4), num_samples=4)
    tilt.set_value(value, GAMMA, lambda act, next_obs: next_obs[:, :1] > 1e6)
    tilted_obs, _ = _sample(model, tilt, seed=3)
    assert calls == [5] * 9 + [3]  # 4 draws x 12 rows
    assert tilt.pop_stats()["optimism_kl"] == pytest.approx(math.log(4))


def test_mean_shift_in_chunks_is_the_same_shift(monkeypatch):
    import mbrl_bound_plugin.models.optimism as module

    model = _model()
    whole = BudgetedOptimism("mean_shift", 0.2)
    whole.set_value(_linear_value, GAMMA, None)
    expected, _ = _sample(model, whole)
    monkeypatch.setattr(module, "_VALUE_CHUNK", 5)
    chunked = BudgetedOptimism("mean_shift", 0.2)
    chunked.set_value(_linear_value, GAMMA, None)
    torch.testing.assert_close(_sample(model, chunked)[0], expected)
    assert chunked.pop_stats() == pytest.approx(whole.pop_stats())


def test_mean_shift_gain_is_measured_on_the_first_rows_without_touching_the_rollouts_rng(
    monkeypatch,
):
    import mbrl_bound_plugin.models.optimism as module

    def noisy_value(next_obs):  # draws from the global generator, as SAC's policy does
        return _linear_value(next_obs) + 0.0 * torch.rand(len(next_obs))

    model = _model()
    tilt = BudgetedOptimism("mean_shift", 0.08)
    tilt.set_value(noisy_value, GAMMA, None)
    with tilt.unrecorded():
        unrecorded = _sample(model, tilt)
        after_unrecorded = torch.rand(3)
    monkeypatch.setattr(module, "_GAIN_ROWS", 7)
    recorded = _sample(model, tilt)
    after_recorded = torch.rand(3)
    for ours, theirs in zip(recorded, unrecorded, strict=True):
        assert torch.equal(ours, theirs)  # recording draws nothing the rollout would see
    assert torch.equal(after_recorded, after_unrecorded)
    # linear V: the gain on the first 7 rows is gamma W . delta of those rows
    plain_obs, _ = _sample(model, None)
    delta = recorded[0] - plain_obs
    stats = tilt.pop_stats()
    assert stats["optimism_value_gain"] == pytest.approx((GAMMA * delta[:7] @ W).mean().item())
    assert stats["optimism_value_gain"] != pytest.approx((GAMMA * delta @ W).mean().item())


def test_pending_sums_saved_before_gain_rows_load():
    tilt = BudgetedOptimism("mean_shift", 0.08)
    old = {"kl": 1.0, "value_gain": 2.0, "eta": 0.0, "eta_rows": 0, "rows": 4.0}
    tilt.load_state_dict({"sums": old})
    assert tilt.pop_stats()["optimism_value_gain"] == 0.5
