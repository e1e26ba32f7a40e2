"""BoundTransitionRewardModel: beta = 0 is mbrl's training; beta > 0 pulls ŝ' toward high V."""

import mbrl.models
import numpy as np
import pytest
import torch
from mbrl.types import TransitionBatch
from mbrl.util.replay_buffer import BootstrapIterator

from mbrl_bound_plugin.discriminator import Discriminator
from mbrl_bound_plugin.model import BoundTransitionRewardModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


OBS_DIM, ACT_DIM, ENSEMBLE = 3, 1, 3
GAMMA = 0.9
WRAPPER_KWARGS = {
    "target_is_delta": True,
    "normalize": True,
    "normalize_double_precision": True,
    "learned_rewards": True,
}
# the linear value V(s') = w . s' of the beta > 0 tests
W = torch.tensor([1.0, -2.0, 0.5])


def _data(num_rows: int = 192, seed: int = 0) -> TransitionBatch:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(num_rows, OBS_DIM)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(num_rows, ACT_DIM)).astype(np.float32)
    next_obs = (obs + 0.1 * act + 0.05 * rng.normal(size=obs.shape)).astype(np.float32)
    rewards = (obs[:, 0] - act[:, 0] ** 2).astype(np.float32)
    done = np.zeros(num_rows, dtype=bool)
    return TransitionBatch(obs, act, next_obs, rewards, done, done.copy())


def _ensemble(seed: int = 0, deterministic: bool = False, ensemble_size: int = ENSEMBLE):
    torch.manual_seed(seed)
    return mbrl.models.GaussianMLP(
        in_size=OBS_DIM + ACT_DIM,
        out_size=OBS_DIM + 1,  # learned rewards
        device="cpu",
        num_layers=2,
        ensemble_size=ensemble_size,
        hid_size=32,
        deterministic=deterministic,
    )


def _zero_discriminator(obs, act, next_obs):
    # logit C = 0 everywhere (p == q as far as C can tell), still a function of next_obs
    return 0.0 * next_obs.sum(-1)


def _linear_value(next_obs):
    return next_obs @ W


def _bound_model(beta: float, data: TransitionBatch, seed: int = 0, **kwargs):
    model = BoundTransitionRewardModel(_ensemble(seed), beta=beta, **WRAPPER_KWARGS, **kwargs)
    model.update_normalizer(data)
    return model


def _first_batch(data: TransitionBatch, batch_size: int = 64) -> TransitionBatch:
    it = BootstrapIterator(data, batch_size, ENSEMBLE, rng=np.random.default_rng(0))
    return next(iter(it))


def _assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module):
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    for name in pa:
        assert torch.equal(pa[name], pb[name]), name


def test_beta_zero_update_is_mbrls_update_bit_for_bit():
    data = _data()
    batch = _first_batch(data)
    assert batch.obs.shape == (ENSEMBLE, 64, OBS_DIM)
    reference = mbrl.models.OneDTransitionRewardModel(_ensemble(0), **WRAPPER_KWARGS)
    reference.update_normalizer(data)
    ours = _bound_model(0.0, data)
    ours.set_bound_critics(_zero_discriminator, _linear_value, GAMMA)
    opt_ref = torch.optim.Adam(reference.parameters(), lr=1e-3, weight_decay=1e-5)
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-3, weight_decay=1e-5)
    losses_ref, losses_ours = [], []
    for _ in range(3):
        losses_ref.append(reference.update(batch, opt_ref)[0])
        losses_ours.append(ours.update(batch, opt_ours)[0])
    assert losses_ref == losses_ours
    _assert_same_parameters(reference, ours)
    # the parameters did move (the comparison is not between two untouched models)
    assert not torch.equal(
        reference.model.mean_and_logvar.weight, _ensemble(0).mean_and_logvar.weight
    )
    stats = ours.pop_bound_stats()
    assert stats == {"model_nll": pytest.approx(np.mean(losses_ref)), "bound_term": 0.0}
    assert ours.pop_bound_stats() == {}


def test_beta_zero_through_mbrl_model_trainer_matches_mbrl():
    data = _data(num_rows=256)
    val = _data(num_rows=64, seed=1)
    results = []
    for cls, extra in (
        (mbrl.models.OneDTransitionRewardModel, {}),
        (BoundTransitionRewardModel, {"beta": 0.0}),
    ):
        model = cls(_ensemble(0), **WRAPPER_KWARGS, **extra)
        model.update_normalizer(data)
        if isinstance(model, BoundTransitionRewardModel):
            model.set_bound_critics(_zero_discriminator, _linear_value, GAMMA)
        trainer = mbrl.models.ModelTrainer(model, optim_lr=1e-3, weight_decay=5e-5)
        train_it = BootstrapIterator(
            data, 32, ENSEMBLE, shuffle_each_epoch=True, rng=np.random.default_rng(3)
        )
        val_it = BootstrapIterator(val, 32, ENSEMBLE, rng=np.random.default_rng(4))
        history = trainer.train(train_it, val_it, num_epochs=2, silent=True)
        results.append((model, history))
    (reference, hist_ref), (ours, hist_ours) = results
    assert hist_ref == hist_ours
    _assert_same_parameters(reference, ours)


def test_beta_positive_moves_predicted_next_state_toward_higher_value():
    data = _data()
    batch = _first_batch(data)
    # beta = 0 and beta > 0 from the same start with the same optimizer: the difference
    # of the two updates is the bound term's doing alone
    plain = _bound_model(0.0, data)
    pulled = _bound_model(50.0, data)
    for model in (plain, pulled):
        model.set_bound_critics(_zero_discriminator, _linear_value, GAMMA)
        model.update(batch, torch.optim.SGD(model.parameters(), lr=1e-3))
    with torch.no_grad():
        model_in = pulled._get_model_input(batch.obs, batch.act)
        mean_plain = plain.model.forward(model_in, use_propagation=False)[0][..., :OBS_DIM]
        mean_pulled = pulled.model.forward(model_in, use_propagation=False)[0][..., :OBS_DIM]
    gain = (mean_pulled - mean_plain) @ W  # change of w . mean(ŝ'), per member and row
    assert gain.mean().item() > 0
    assert (gain > 0).float().mean().item() > 0.9
    stats = pulled.pop_bound_stats()
    assert set(stats) == {"model_nll", "bound_term"}
    assert np.isfinite(stats["bound_term"]) and stats["bound_term"] != 0.0


def test_beta_positive_with_adam_also_raises_value_and_trains_through_model_trainer():
    data = _data(num_rows=256)
    plain = _bound_model(0.0, data)
    pulled = _bound_model(100.0, data)
    for model in (plain, pulled):
        model.set_bound_critics(_zero_discriminator, _linear_value, GAMMA)
        trainer = mbrl.models.ModelTrainer(model, optim_lr=1e-3, weight_decay=0.0)
        it = BootstrapIterator(data, 64, ENSEMBLE, rng=np.random.default_rng(0))
        torch.manual_seed(5)
        trainer.train(it, num_epochs=1, evaluate=False, silent=True)
    with torch.no_grad():
        model_in = pulled._get_model_input(data.obs, data.act)
        mean_plain = plain.model.forward(model_in, use_propagation=False)[0][..., :OBS_DIM]
        mean_pulled = pulled.model.forward(model_in, use_propagation=False)[0][..., :OBS_DIM]
    assert ((mean_pulled - mean_plain) @ W).mean().item() > 0
    stats = pulled.pop_bound_stats()
    assert np.isfinite(stats["model_nll"]) and np.isfinite(stats["bound_term"])


def test_no_gradient_reaches_discriminator_or_value_parameters():
    data = _data()
    batch = _first_batch(data)
    torch.manual_seed(1)
    disc = Discriminator(OBS_DIM, ACT_DIM, hid_size=16)
    critic = torch.nn.Linear(OBS_DIM, 1)
    model = _bound_model(1.0, data)
    num_params = len(list(model.parameters()))
    model.set_bound_critics(disc, lambda s: critic(s), GAMMA, frozen=(critic,))
    # the critics are not registered as submodules of the model (nor in its optimizer)
    assert len(list(model.parameters())) == num_params
    before = {k: v.clone() for k, v in model.named_parameters()}
    loss, meta = model.update(batch, torch.optim.Adam(model.parameters(), lr=1e-3))
    assert np.isfinite(loss) and set(meta) >= {"model_nll", "bound_term"}
    for p in list(disc.parameters()) + list(critic.parameters()):
        assert p.grad is None
        assert p.requires_grad  # restored after the update
    # ... while the model itself was trained
    assert any(not torch.equal(before[k], v) for k, v in model.named_parameters())


def test_bound_term_gradient_reaches_the_model_only_through_next_obs():
    data = _data()
    batch = _first_batch(data)
    model = _bound_model(1.0, data)
    # a value that ignores s' gives the model no gradient beyond the NLL's
    model.set_bound_critics(_zero_discriminator, lambda s: 0.0 * s.sum(-1) + 3.0, GAMMA)
    reference = _bound_model(0.0, data)
    for m in (model, reference):
        m.update(batch, torch.optim.SGD(m.parameters(), lr=1e-2))
    _assert_same_parameters(reference, model)


def test_sampled_next_obs_mirrors_mbrl_sample_with_no_delta_dims():
    data = _data(num_rows=16)
    kwargs = dict(WRAPPER_KWARGS, no_delta_list=[1])
    reference = mbrl.models.OneDTransitionRewardModel(
        _ensemble(2, deterministic=True, ensemble_size=1), **kwargs
    )
    ours = BoundTransitionRewardModel(_ensemble(2, deterministic=True, ensemble_size=1), **kwargs)
    for m in (reference, ours):
        m.update_normalizer(data)
    obs, act = torch.from_numpy(data.obs), torch.from_numpy(data.act)
    with torch.no_grad():
        expected, *_ = reference.sample(
            act, {"obs": obs, "propagation_indices": None}, deterministic=True
        )
        got = ours.sample_next_obs(data)
    assert got.shape == (1, 16, OBS_DIM)
    torch.testing.assert_close(got[0], expected)


def test_sampled_next_obs_is_mean_plus_sigma_times_standard_normal():
    data = _data(num_rows=2000)
    model = _bound_model(0.0, data)
    torch.manual_seed(0)
    with torch.no_grad():
        sample = model.sample_next_obs(data)
        mean, logvar = model.model.forward(
            model._get_model_input(data.obs, data.act), use_propagation=False
        )
    assert sample.shape == (ENSEMBLE, 2000, OBS_DIM)
    eps = (sample - torch.from_numpy(data.obs) - mean[..., :OBS_DIM]) / torch.exp(
        0.5 * logvar[..., :OBS_DIM]
    )
    assert abs(eps.mean().item()) < 0.05
    assert eps.std().item() == pytest.approx(1.0, abs=0.05)


def test_two_dimensional_batch_is_accepted():
    data = _data(num_rows=32)
    model = _bound_model(1.0, data)
    model.set_bound_critics(_zero_discriminator, _linear_value, GAMMA)
    loss, meta = model.update(data, torch.optim.Adam(model.parameters(), lr=1e-3))
    assert np.isfinite(loss) and np.isfinite(meta["bound_term"])


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="beta must be >= 0"):
        BoundTransitionRewardModel(_ensemble(0), beta=-0.1, **WRAPPER_KWARGS)
    model = BoundTransitionRewardModel(_ensemble(0), beta=1.0, **WRAPPER_KWARGS)
    with pytest.raises(ValueError, match="gamma"):
        model.set_bound_critics(_zero_discriminator, _linear_value, gamma=1.5)
