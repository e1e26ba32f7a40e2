"""BoundTransitionRewardModel: beta = 0 is mbrl's training; beta > 0 pulls ŝ' toward high V."""

import mbrl.models
import numpy as np
import pytest
import torch
from mbrl.types import TransitionBatch
from mbrl.util.replay_buffer import BootstrapIterator
from omegaconf import OmegaConf

from mbrl_bound_plugin.models.discriminator import Discriminator
from mbrl_bound_plugin.models.model_wrapper import BOUND_STATS, BoundTransitionRewardModel

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
    # no bound term was computed: only the NLL (mbrl's loss) is recorded
    assert stats == {"model_nll": pytest.approx(np.mean(losses_ref))}
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
    assert set(stats) == set(BOUND_STATS)
    assert np.isfinite(stats["bound_term"]) and stats["bound_term"] != 0.0
    # C = 0: no ratio term; the bound term is minus the (discounted) value
    assert stats["bound_logit"] == 0.0
    assert stats["bound_term"] == pytest.approx(-stats["bound_value"])


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


# --- the bound term with critics that depend on ŝ' (where a leak would show) ---

OUT = OBS_DIM + 1  # the ensemble's outputs: next-state deltas, then the reward
# columns of the output layer mean_and_logvar: [mean (OUT) | logvar (OUT)]
OBS_MEAN_COLS = list(range(OBS_DIM))
OBS_LOGVAR_COLS = [OUT + i for i in range(OBS_DIM)]
REWARD_COLS = [OBS_DIM, OUT + OBS_DIM]  # the reward's mean and logvar


def _real_mean(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """The mean of the real next state of ``_data``: ``s + 0.1 a``."""
    return obs + 0.1 * act


def _peaked_discriminator(obs, act, next_obs):
    # a known log-ratio, highest where ŝ' is the real mean (as log p/q for a wide q)
    return -0.5 * (next_obs - _real_mean(obs, act)).pow(2).sum(-1)


def _zero_value(next_obs):
    return 0.0 * next_obs.sum(-1)


def _update_grads(model: BoundTransitionRewardModel, batch: TransitionBatch):
    """The gradients of one ``model.update`` (an optimizer with lr 0 leaves the weights)."""
    model.update(batch, torch.optim.SGD(model.parameters(), lr=0.0))
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _bound_only_grads(
    data: TransitionBatch, batch: TransitionBatch, beta: float = 10.0, **critics
) -> dict[str, torch.Tensor]:
    """The gradient of the bound term alone: (grad at beta - grad at beta 0) / beta."""
    with_bound = _bound_model(beta, data)
    with_bound.set_bound_critics(gamma=GAMMA, **critics)
    torch.manual_seed(7)
    grads = _update_grads(with_bound, batch)
    plain = _update_grads(_bound_model(0.0, data), batch)
    assert grads.keys() == plain.keys()
    return {k: (grads[k] - plain[k]) / beta for k in grads}


def _output_layer_grads(grads: dict[str, torch.Tensor], cols: list[int]) -> torch.Tensor:
    return torch.cat(
        [
            grads["model.mean_and_logvar.weight"][..., cols],
            grads["model.mean_and_logvar.bias"][..., cols],
        ],
        1,
    )


def test_reward_head_gets_no_gradient_from_the_bound_term():
    data = _data()
    batch = _first_batch(data)
    # C and V both depend on every dimension of ŝ' (and C on s, a)
    bound_grads = _bound_only_grads(
        data,
        batch,
        discriminator=_peaked_discriminator,
        value_fn=lambda s: torch.sin(s) @ W + s.pow(2).sum(-1),
    )
    # the next-state mean and log-variance columns are driven by the bound term ...
    assert _output_layer_grads(bound_grads, OBS_MEAN_COLS).abs().max() > 1e-2
    # ... and the reward's columns (a leak would give them the same order of gradient) not
    reward = _output_layer_grads(bound_grads, REWARD_COLS)
    assert reward.abs().max().item() < 1e-5


def test_critics_see_next_obs_with_gradient_and_obs_and_act_as_data():
    data = _data()
    batch = _first_batch(data)
    seen = {}

    def discriminator(obs, act, next_obs):
        seen["disc"] = (obs, act, next_obs)
        return _peaked_discriminator(obs, act, next_obs)

    def value_fn(next_obs):
        seen["value"] = next_obs
        return next_obs @ W

    model = _bound_model(1.0, data)
    model.set_bound_critics(discriminator, value_fn, GAMMA)
    model.update(batch, torch.optim.SGD(model.parameters(), lr=1e-3))
    obs, act, next_obs = seen["disc"]
    assert next_obs.shape == (ENSEMBLE, 64, OBS_DIM) and next_obs.requires_grad
    assert seen["value"] is next_obs  # V is read at the same samples ŝ' as C
    # obs and act are the batch's own rows, carrying no gradient back to the model
    assert not obs.requires_grad and not act.requires_grad
    torch.testing.assert_close(obs.expand(ENSEMBLE, -1, -1), torch.from_numpy(batch.obs))
    torch.testing.assert_close(act.expand(ENSEMBLE, -1, -1), torch.from_numpy(batch.act))


def test_a_discriminator_of_obs_and_act_only_gives_the_model_no_gradient():
    data = _data()
    batch = _first_batch(data)
    # ŝ' enters neither critic: whatever C says about (s, a), the model has no say in it
    bound_grads = _bound_only_grads(
        data,
        batch,
        discriminator=lambda o, a, s: (o.pow(2).sum(-1) + 3.0 * a.sum(-1)).expand(s.shape[:-1]),
        value_fn=_zero_value,
    )
    for name, grad in bound_grads.items():
        assert grad.abs().max().item() < 1e-5, name


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_peaked_log_ratio_moves_the_model_mean_toward_the_real_mean(sign):
    """V = 0, logit C = -|ŝ' - m(s, a)|^2 / 2 with m the real mean: the model step pulls the
    model's mean to m (or, with the ratio term g(x) = -x read instead, pushes it away)."""
    shift = 1.0  # real next states s + 0.1 a + 1 (+ noise): far from a fresh model's mean
    data = _data()
    data = TransitionBatch(
        data.obs, data.act, data.next_obs + shift, data.rewards, data.terminateds, data.truncateds
    )
    batch = _first_batch(data)

    def peaked(obs, act, next_obs):
        return -0.5 * (next_obs - _real_mean(obs, act) - shift).pow(2).sum(-1)

    plain = _bound_model(0.0, data)
    pulled = _bound_model(5.0, data)
    for model in (plain, pulled):
        model.set_bound_critics(peaked, _zero_value, GAMMA, ratio_fn=lambda x: sign * x)
        model.update(batch, torch.optim.SGD(model.parameters(), lr=1e-3))
    obs, act = torch.from_numpy(batch.obs), torch.from_numpy(batch.act)
    target = _real_mean(obs, act) + shift
    with torch.no_grad():
        model_in = pulled._get_model_input(batch.obs, batch.act)
        dist = {}
        for name, model in (("plain", plain), ("pulled", pulled)):
            mean = model.model.forward(model_in, use_propagation=False)[0][..., :OBS_DIM]
            dist[name] = (obs + mean - target).pow(2).sum(-1)  # per member and row
    # the NLL alone moves the mean too (plain); the bound term adds a pull to m for
    # every member and row (sign 1), or a push away (sign -1)
    if sign > 0:
        assert (dist["pulled"] < dist["plain"]).all()
    else:
        assert (dist["pulled"] > dist["plain"]).all()
    stats = pulled.pop_bound_stats()
    assert stats["bound_value"] == 0.0
    assert stats["bound_term"] == pytest.approx(-stats["bound_logit"])
    assert sign * stats["bound_logit"] < 0  # a log-ratio below its peak


def test_sigma_gets_its_reparameterized_gradient_from_the_bound_term():
    data = _data()
    batch = _first_batch(data)
    # the peaked log-ratio penalizes the spread of ŝ' around m: E|ŝ' - m|^2 grows with sigma
    bound_grads = _bound_only_grads(
        data, batch, discriminator=_peaked_discriminator, value_fn=_zero_value
    )
    logvar = _output_layer_grads(bound_grads, OBS_LOGVAR_COLS)
    assert logvar.abs().max().item() > 1e-3
    # raising log sigma^2 lowers the logit: the bound term's gradient on the logvar
    # biases is positive (gradient descent shrinks sigma)
    assert bound_grads["model.mean_and_logvar.bias"][..., OBS_LOGVAR_COLS].sum().item() > 0
    assert _output_layer_grads(bound_grads, REWARD_COLS).abs().max().item() < 1e-5


def test_values_after_terminal_samples_have_no_effect_on_the_model_step():
    data = _data()
    batch = _first_batch(data)
    calls = []

    def all_terminal(act, next_obs):
        # mbrl's term_fn(act, next_obs) -> N x 1 bools, on flattened samples
        calls.append((act.shape, next_obs.shape))
        return torch.ones(next_obs.shape[0], 1, dtype=torch.bool)

    def never_terminal(act, next_obs):
        return torch.zeros(next_obs.shape[0], 1, dtype=torch.bool)

    def steep_value(next_obs):
        return 100.0 * (next_obs @ W)

    grads = {}
    for name, value_fn, term_fn in (
        ("terminal", steep_value, all_terminal),
        ("zero_value", _zero_value, never_terminal),
        ("alive", steep_value, never_terminal),
    ):
        grads[name] = _bound_only_grads(
            data,
            batch,
            discriminator=_peaked_discriminator,
            value_fn=value_fn,
            termination_fn=term_fn,
        )
    assert calls and all(c == ((ENSEMBLE * 64, ACT_DIM), (ENSEMBLE * 64, OBS_DIM)) for c in calls)
    # all terminal: V counts 0, exactly as if it were 0
    for key, grad in grads["terminal"].items():
        torch.testing.assert_close(grad, grads["zero_value"][key], atol=1e-5, rtol=1e-4)
    # (while the same V does drive the model where the samples are not terminal)
    diff = (
        grads["alive"]["model.mean_and_logvar.weight"]
        - grads["zero_value"]["model.mean_and_logvar.weight"]
    )
    assert diff.abs().max().item() > 1.0
    model = _bound_model(1.0, data)
    model.set_bound_critics(_peaked_discriminator, steep_value, GAMMA, termination_fn=all_terminal)
    model.update(batch, torch.optim.SGD(model.parameters(), lr=1e-3))
    assert model.pop_bound_stats()["bound_value"] == 0.0


def _same_member_batch(data: TransitionBatch, ensemble_size: int) -> TransitionBatch:
    def rep(x):
        return np.repeat(x[None], ensemble_size, axis=0)

    return TransitionBatch(*(rep(x) for x in data.astuple()))


def _copies_of_one_member(source: mbrl.models.GaussianMLP, ensemble_size: int):
    """A ``GaussianMLP`` of ``ensemble_size`` members, each a copy of ``source``'s one member."""
    ensemble = _ensemble(0, ensemble_size=ensemble_size)
    with torch.no_grad():
        for p, q in zip(ensemble.parameters(), source.parameters(), strict=True):
            p.copy_(q.expand_as(p) if p.shape[0] == ensemble_size and q.shape[0] == 1 else q)
    return ensemble


def test_beta_weighs_the_bound_term_against_the_nll_alike_for_any_ensemble_size(monkeypatch):
    """Same data and weights in every member: ensemble 3 is three ensemble-1 problems."""
    data = _data(num_rows=64)
    # one noise draw eps for every member (and both ensembles): ŝ' = s + mu + sigma eps
    eps = torch.randn(1, 64, OBS_DIM, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(torch, "randn_like", lambda x: eps.expand_as(x).clone())
    single = _ensemble(0, ensemble_size=1)
    results = {}
    for size in (1, 3):
        model = BoundTransitionRewardModel(
            _copies_of_one_member(single, size), beta=2.0, **WRAPPER_KWARGS
        )
        model.update_normalizer(data)
        model.set_bound_critics(_peaked_discriminator, _linear_value, GAMMA)
        model.update(_same_member_batch(data, size), torch.optim.SGD(model.parameters(), lr=0.0))
        stats = model.pop_bound_stats()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        results[size] = (stats, grads)
    (one, grads_one), (three, grads_three) = results[1], results[3]
    # mbrl's GaussianMLP sums its members' NLLs (plus a constant of the logvar bounds):
    # the bound term is summed over members alike
    assert three["bound_term"] == pytest.approx(3 * one["bound_term"], rel=1e-5)
    assert three["bound_logit"] == pytest.approx(3 * one["bound_logit"], rel=1e-5)
    assert three["bound_value"] == pytest.approx(3 * one["bound_value"], rel=1e-5)
    # so each member's gradient (NLL + beta * bound term) is the single member's
    for name, grad in grads_three.items():
        for member in range(3):
            torch.testing.assert_close(grad[member], grads_one[name][0], rtol=1e-4, atol=1e-6)


def _basic_ensemble(ensemble_size: int) -> mbrl.models.BasicEnsemble:
    torch.manual_seed(0)
    member = {
        "_target_": "mbrl.models.GaussianMLP",
        "in_size": OBS_DIM + ACT_DIM,
        "out_size": OBS_DIM + 1,
        "device": "cpu",
        "num_layers": 2,
        "ensemble_size": 1,
        "hid_size": 32,
    }
    ensemble = mbrl.models.BasicEnsemble(ensemble_size, "cpu", OmegaConf.create(member))
    with torch.no_grad():  # every member a copy of the first
        for m in ensemble.members[1:]:
            m.load_state_dict(ensemble.members[0].state_dict())
    return ensemble


def test_basic_ensemble_averages_the_bound_term_as_it_averages_the_nll(monkeypatch):
    data = _data(num_rows=64)
    eps = torch.randn(1, 64, OBS_DIM, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(torch, "randn_like", lambda x: eps.expand_as(x).clone())
    stats = {}
    for size in (1, 3):
        model = BoundTransitionRewardModel(_basic_ensemble(size), beta=2.0, **WRAPPER_KWARGS)
        model.update_normalizer(data)
        model.set_bound_critics(_peaked_discriminator, _linear_value, GAMMA)
        model.update(_same_member_batch(data, size), torch.optim.SGD(model.parameters(), lr=0.0))
        stats[size] = model.pop_bound_stats()
    for key in BOUND_STATS:  # members' means: the same for 1 or 3 identical members
        assert stats[3][key] == pytest.approx(stats[1][key], rel=1e-5), key
    assert stats[1]["bound_term"] != 0.0


def _nll_by_hand(model: BoundTransitionRewardModel, batch: TransitionBatch) -> torch.Tensor:
    """mbrl's Gaussian NLL per member and row, ``(x - mu)^2 / sigma^2 + log sigma^2``, averaged
    over the output dimensions."""
    model_in, target = model._process_batch(batch)
    mean, logvar = model.model.forward(model_in, use_propagation=False)
    return ((mean - target).pow(2) * torch.exp(-logvar) + logvar).mean(-1)


@pytest.mark.parametrize("clamp_value", [True, False])
def test_eval_score_with_beta_is_the_nll_plus_beta_times_the_bound_term(clamp_value):
    data = _data(num_rows=48)
    model = _bound_model(0.5, data, clamp_value=clamp_value)
    model.set_bound_critics(_peaked_discriminator, _linear_value, GAMMA)
    with torch.no_grad():
        torch.manual_seed(11)
        score, meta = model.eval_score(data)
        torch.manual_seed(11)  # the same draws of ŝ'
        next_obs = model.sample_next_obs(data)
        obs, act = torch.from_numpy(data.obs), torch.from_numpy(data.act)
        value = _linear_value(next_obs)
        real_value = _linear_value(torch.from_numpy(data.next_obs))  # no terminal rows here
        clamped = (value < real_value.min()) | (value > real_value.max())
        if clamp_value:
            value = value.clamp(real_value.min(), real_value.max())
        term = -(_peaked_discriminator(obs, act, next_obs) + GAMMA * value)
        expected = _nll_by_hand(model, data) + 0.5 * term
    assert score.shape == (ENSEMBLE, 48, 1)
    torch.testing.assert_close(score[..., 0], expected, rtol=1e-5, atol=1e-5)
    # (the bound part is not negligible here, and some samples are beyond the real range)
    assert (0.5 * term).abs().mean() > 0.1
    assert 0 < clamped.float().mean() < 0.5
    # before the critics are set, the score is the NLL alone
    fresh = _bound_model(0.5, data)
    with torch.no_grad():
        torch.testing.assert_close(
            fresh.eval_score(data)[0][..., 0], _nll_by_hand(fresh, data), rtol=1e-5, atol=1e-5
        )


def test_eval_score_with_beta_zero_is_mbrls():
    data = _data(num_rows=48)
    reference = mbrl.models.OneDTransitionRewardModel(_ensemble(0), **WRAPPER_KWARGS)
    reference.update_normalizer(data)
    ours = _bound_model(0.0, data)
    ours.set_bound_critics(_peaked_discriminator, _linear_value, GAMMA)
    expected, _ = reference.eval_score(data)
    got, _ = ours.eval_score(data)
    assert got.shape == expected.shape == (ENSEMBLE, 48, OUT)
    assert torch.equal(got, expected)


# --- one ensemble forward per update, and the bound term on a subsample ---


@pytest.mark.parametrize("two_dim", [False, True], ids=["E x B batch", "B batch"])
def test_the_nll_from_the_shared_forward_is_mbrls_loss(two_dim):
    data = _data()
    batch = _first_batch(data)
    if two_dim:
        batch = TransitionBatch(*(x[0] for x in batch.astuple()))
    model = _bound_model(0.5, data)
    model_in, target = model._process_batch(batch)
    mean, logvar = model._members_forward(model_in)
    expected, _ = model.model.loss(model_in, target)
    assert torch.equal(model._nll(model_in, target, mean, logvar), expected)


def test_a_bound_update_runs_the_ensemble_forward_once(monkeypatch):
    data = _data()
    model = _bound_model(0.5, data)
    model.set_bound_critics(_zero_discriminator, _linear_value, GAMMA)
    calls = []
    forward = model.model.forward
    monkeypatch.setattr(model.model, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    model.update(_first_batch(data), torch.optim.SGD(model.parameters(), lr=0.1))
    assert len(calls) == 1


def _bound_grads(model: BoundTransitionRewardModel, batch: TransitionBatch) -> dict:
    model.update(batch, torch.optim.SGD(model.parameters(), lr=0.0))
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_bound_batch_size_puts_the_bound_term_on_the_first_rows_only(monkeypatch):
    data = _data()
    batch = _first_batch(data)  # 64 rows per member
    eps = torch.randn(ENSEMBLE, 64, OBS_DIM, generator=torch.Generator().manual_seed(1))
    seen = []

    def randn_like(x):
        seen.append(x.shape)
        return eps[:, : x.shape[1]].clone()

    monkeypatch.setattr(torch, "randn_like", randn_like)
    sub = _bound_model(2.0, data, bound_batch_size=16)
    sub.set_bound_critics(_peaked_discriminator, _linear_value, GAMMA)
    sub_grads = _bound_grads(sub, batch)
    sub_stats = sub.pop_bound_stats()
    assert seen == [torch.Size([ENSEMBLE, 16, OBS_DIM])]  # ŝ' drawn for 16 rows only
    # the same as the whole model on a batch whose bound rows are those 16 ...
    first = TransitionBatch(*(x[:, :16] for x in batch.astuple()))
    full = _bound_model(2.0, data)
    full.set_bound_critics(_peaked_discriminator, _linear_value, GAMMA)
    full.update(first, torch.optim.SGD(full.parameters(), lr=0.0))
    assert full.pop_bound_stats()["bound_term"] == pytest.approx(sub_stats["bound_term"])
    # ... while the NLL still sees all 64 rows: gradients differ from the 16-row model's
    nll_only = _bound_model(0.0, data)
    nll_only.update(batch, torch.optim.SGD(nll_only.parameters(), lr=0.0))
    assert sub_stats["model_nll"] == pytest.approx(nll_only.pop_bound_stats()["model_nll"])
    full_grads = {k: p.grad for k, p in full.named_parameters() if p.grad is not None}
    assert sub_grads.keys() == full_grads.keys()
    assert any(not torch.allclose(sub_grads[k], full_grads[k]) for k in sub_grads)


def test_bound_batch_size_in_validation_adds_the_subsample_mean_to_every_row():
    data = _data()
    rows = TransitionBatch(*(x[:64] for x in data.astuple()))
    sub = _bound_model(2.0, data, bound_batch_size=8)
    sub.set_bound_critics(_zero_discriminator, _linear_value, GAMMA)
    score, _ = sub.eval_score(rows)
    assert score.shape == (ENSEMBLE, 64, 1)
    nll_score, _ = _bound_model(2.0, data).eval_score(rows)  # no critics yet: the NLL
    added = (score - nll_score).squeeze(-1)
    # one number per member: beta times the mean bound term of that member's 8 rows
    assert torch.allclose(added, added[:, :1].expand_as(added))
    assert not torch.allclose(added[0], added[1])


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_a_bad_bound_batch_size_is_refused(bad):
    with pytest.raises(ValueError, match="bound_batch_size"):
        BoundTransitionRewardModel(_ensemble(0), beta=1.0, bound_batch_size=bad, **WRAPPER_KWARGS)


# --- V(ŝ') clamped to the range of V at real next states ---


def _one_next_state_data(num_rows: int = 128) -> TransitionBatch:
    """Data whose real next states all have the same value under ``_linear_value``."""
    data = _data(num_rows)
    next_obs = np.broadcast_to(data.next_obs[:1], data.next_obs.shape).copy()
    return TransitionBatch(data.obs, data.act, next_obs, data.rewards, *data.astuple()[4:])


@pytest.mark.parametrize("clamp_value", [True, False])
def test_a_value_range_of_one_point_leaves_the_value_no_gradient(clamp_value):
    # every real next state has the same V, so every ŝ' is clamped to it: the bound term is
    # then constant and the update is the NLL's alone; without the clamp it is not
    data = _one_next_state_data()
    batch = _first_batch(data)
    results = {}
    for beta in (0.0, 50.0):
        model = _bound_model(beta, data, clamp_value=clamp_value)
        model.set_bound_critics(_zero_discriminator, _linear_value, GAMMA)
        torch.manual_seed(2)
        model.update(batch, torch.optim.SGD(model.parameters(), lr=1e-3))
        results[beta] = (model, model.pop_bound_stats())
    (plain, _), (pulled, stats) = results[0.0], results[50.0]
    weights = [m.model.mean_and_logvar.weight for m in (plain, pulled)]
    if clamp_value:
        torch.testing.assert_close(weights[0], weights[1])
        assert stats["bound_value_clamped"] == 1.0
        expected_value = GAMMA * _linear_value(torch.from_numpy(data.next_obs[0])).item()
        assert stats["bound_value"] == pytest.approx(ENSEMBLE * expected_value, rel=1e-5)
    else:
        assert not torch.allclose(weights[0], weights[1])
        assert stats["bound_value_clamped"] == 0.0


def test_the_value_range_leaves_out_real_next_states_after_termination():
    # one real row ends an episode with a next state of huge value: it must not widen the
    # range (the critic has no evidence there), so samples are still clamped to the rest
    data = _one_next_state_data(num_rows=64)
    next_obs, terminated = data.next_obs.copy(), data.terminateds.copy()
    next_obs[5] = 100.0 * W.numpy()  # V = 100 |w|^2
    terminated[5] = True
    data = TransitionBatch(data.obs, data.act, next_obs, data.rewards, terminated, terminated)
    model = _bound_model(1.0, data, clamp_value=True)
    model.set_bound_critics(_zero_discriminator, _linear_value, GAMMA)
    with torch.no_grad():
        score = model.eval_score(data)[0][..., 0]
    low = _linear_value(torch.from_numpy(data.next_obs[0])).item()
    torch.testing.assert_close(score, _nll_by_hand(model, data) - GAMMA * low)


def test_terminal_samples_are_not_counted_as_clamped():
    # one-point range: every live sample is clamped; a terminal one's value counts 0 anyway
    data = _one_next_state_data()
    batch = _first_batch(data)
    fractions = {}
    for name, terminal in (("alive", False), ("terminal", True)):
        model = _bound_model(1.0, data, clamp_value=True)
        model.set_bound_critics(
            _zero_discriminator,
            _linear_value,
            GAMMA,
            termination_fn=lambda act, next_obs, t=terminal: torch.full(
                (next_obs.shape[0], 1), t, dtype=torch.bool
            ),
        )
        model.update(batch, torch.optim.SGD(model.parameters(), lr=1e-3))
        fractions[name] = model.pop_bound_stats()["bound_value_clamped"]
    assert fractions == {"alive": 1.0, "terminal": 0.0}
