"""The discriminator's logit recovers a known log-ratio; its fit is reproducible and safe."""

import numpy as np
import pytest
import torch

from mbrl_bound_plugin.discriminator import Discriminator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# model's next-state shift: real s' ~ N(obs, 1), model s' ~ N(obs + SHIFT, 1)
SHIFT = 1.0


def _gaussian_rows(num_rows: int, shift: float, seed: int):
    """Real and model transitions at the same (obs, act) rows, as float64 numpy arrays."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(3.0, 2.0, size=(num_rows, 1))
    act = rng.uniform(-1.0, 1.0, size=(num_rows, 1))
    next_obs = obs + rng.normal(0.0, 1.0, size=(num_rows, 1))
    model_next_obs = obs + shift + rng.normal(0.0, 1.0, size=(num_rows, 1))
    return obs, act, next_obs, model_next_obs


def _small_disc(**kwargs) -> Discriminator:
    args = {"obs_dim": 1, "act_dim": 1, "hid_size": 64, "num_layers": 2, "lr": 1e-3}
    args.update(kwargs)
    return Discriminator(**args)


def test_logit_recovers_analytic_log_ratio_of_two_gaussians():
    torch.manual_seed(0)
    obs, act, next_obs, model_next_obs = _gaussian_rows(20_000, SHIFT, seed=0)
    disc = _small_disc(batch_size=512, num_updates=1500)
    stats = disc.fit(obs, act, next_obs, model_next_obs, generator=torch.Generator().manual_seed(0))

    # log N(x; 0, 1) - log N(x; SHIFT, 1) = ((x - SHIFT)^2 - x^2) / 2 = SHIFT^2 / 2 - SHIFT * x,
    # with x = s' - obs. Grid: x within 2 std of both Gaussians, obs and act across the data.
    x = torch.linspace(-2.0 + SHIFT, 2.0, 31)
    grid_obs = torch.tensor([0.0, 1.5, 3.0, 4.5, 6.0])
    grid_act = torch.tensor([-0.8, 0.0, 0.8])
    o, a, dx = torch.meshgrid(grid_obs, grid_act, x, indexing="ij")
    o, a, dx = o.reshape(-1, 1), a.reshape(-1, 1), dx.reshape(-1, 1)
    with torch.no_grad():
        logits = disc(o, a, o + dx)
    analytic = SHIFT**2 / 2 - SHIFT * dx.squeeze(-1)
    err = (logits - analytic).abs()
    # Tolerance: with 18k rows per class the fit's slope/intercept standard errors are
    # ~0.02, and the MLP bends a little near the grid's edges (seeds 0-4 gave mean errors
    # 0.025-0.06 nats, max 0.11-0.23). 0.1 nats mean / 0.3 max leaves that margin, while
    # a wrong slope (0.5 or 2 instead of 1) would be off by more than 0.3 nats on average.
    assert err.mean().item() < 0.1, err.mean().item()
    assert err.max().item() < 0.3, err.max().item()

    # Bayes-optimal balanced accuracy is Phi(SHIFT / 2) = 0.69; KL(q||p) = SHIFT^2 / 2 = 0.5
    assert stats["disc_accuracy"] == pytest.approx(0.69, abs=0.03)
    assert stats["kl_estimate"] == pytest.approx(0.5, abs=0.1)
    # optimal loss: 2 * (log 2 - JS(p, q)); must be below log 4 (chance)
    assert stats["disc_loss"] < np.log(4.0) - 0.05


def test_accuracy_is_chance_when_model_equals_reality():
    torch.manual_seed(1)
    obs, act, next_obs, model_next_obs = _gaussian_rows(4000, 0.0, seed=1)
    disc = _small_disc(batch_size=256, num_updates=300, holdout_ratio=0.25)
    stats = disc.fit(obs, act, next_obs, model_next_obs, generator=torch.Generator().manual_seed(1))
    # 1000 held-out rows: the balanced accuracy's std is about 0.011 when p == q
    assert stats["disc_accuracy"] == pytest.approx(0.5, abs=0.05)
    assert abs(stats["kl_estimate"]) < 0.1


def test_fit_sets_standardization_buffers_from_real_training_rows():
    torch.manual_seed(2)
    obs, act, next_obs, model_next_obs = _gaussian_rows(4000, 5.0, seed=2)
    disc = _small_disc(batch_size=64, num_updates=5)
    assert {"feature_mean", "feature_std"} <= set(disc.state_dict())
    disc.fit(obs, act, next_obs, model_next_obs, generator=torch.Generator().manual_seed(0))
    # features [obs, act, next_obs - obs] of real rows: obs ~ N(3, 2), act ~ U(-1, 1)
    # (std 0.577), real delta ~ N(0, 1); the model's shift of 5 must not leak in
    torch.testing.assert_close(disc.feature_mean, torch.tensor([3.0, 0.0, 0.0]), atol=0.1, rtol=0)
    torch.testing.assert_close(disc.feature_std, torch.tensor([2.0, 0.577, 1.0]), atol=0.06, rtol=0)


def test_batch_size_larger_than_training_rows_is_refused():
    obs, act, next_obs, model_next_obs = _gaussian_rows(100, 0.5, seed=3)
    disc = _small_disc(batch_size=256, holdout_ratio=0.1)
    with pytest.raises(ValueError, match="discriminator.batch_size") as info:
        disc.fit(obs, act, next_obs, model_next_obs)
    assert "256" in str(info.value) and "90" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"obs_dim": 0},
        {"hid_size": 0},
        {"num_layers": 0},
        {"lr": 0.0},
        {"weight_decay": -1.0},
        {"batch_size": 0},
        {"num_updates": 0},
        {"holdout_ratio": 0.0},
        {"holdout_ratio": 1.0},
    ],
)
def test_bad_constructor_arguments_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        _small_disc(**kwargs)


def test_gradient_flows_to_next_obs_with_leading_ensemble_dim():
    torch.manual_seed(3)
    disc = _small_disc()
    obs = torch.randn(5, 1)
    act = torch.randn(5, 1)
    next_obs = torch.randn(3, 5, 1, requires_grad=True)  # ensemble x batch x dim
    with disc.freeze():
        assert not any(p.requires_grad for p in disc.parameters())
        logits = disc(obs, act, next_obs)
        assert logits.shape == (3, 5)
        logits.sum().backward()
    assert all(p.requires_grad for p in disc.parameters())
    assert all(p.grad is None for p in disc.parameters())
    assert next_obs.grad is not None and next_obs.grad.abs().sum() > 0
    # the broadcast obs gives the same logits as an explicitly expanded one
    with torch.no_grad():
        expanded = disc(obs.expand(3, 5, 1), act.expand(3, 5, 1), next_obs)
    torch.testing.assert_close(expanded, logits.detach())


def test_fit_is_reproducible_with_the_same_generator_seed():
    obs, act, next_obs, model_next_obs = _gaussian_rows(2000, 0.5, seed=4)
    results = []
    for seed in (7, 7, 8):
        torch.manual_seed(0)  # same initial weights
        disc = _small_disc(batch_size=128, num_updates=50)
        global_state = torch.get_rng_state()
        stats = disc.fit(
            torch.from_numpy(obs),
            act,
            torch.from_numpy(next_obs),
            model_next_obs,
            generator=torch.Generator().manual_seed(seed),
        )
        # all the fit's randomness comes from the generator
        assert torch.equal(torch.get_rng_state(), global_state)
        results.append((stats, disc.state_dict()))
    (stats_a, sd_a), (stats_b, sd_b), (stats_c, sd_c) = results
    assert stats_a == stats_b
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    assert not all(torch.equal(sd_a[k], sd_c[k]) for k in sd_a)
