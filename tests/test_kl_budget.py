"""The budgeted tilt's pure math (``mbrl_bound_plugin.kl_budget``), on hand-made numbers."""

from __future__ import annotations

import math

import pytest
import torch

from mbrl_bound_plugin import kl_budget


def test_mean_shift_spends_exactly_the_budget_along_sigma_times_grad():
    sigma = torch.tensor([[1.0, 2.0], [0.5, 0.5]])
    grad = torch.tensor([[3.0, 2.0], [0.0, 0.0]])  # second row: terminal, grad V = 0
    delta = kl_budget.mean_shift(sigma, grad, 0.08)
    # row 0: sigma*grad = (3, 4), norm 5, u = (0.6, 0.8), sqrt(2 eps) = 0.4
    assert torch.allclose(delta[0], torch.tensor([1.0 * 0.4 * 0.6, 2.0 * 0.4 * 0.8]))
    assert torch.equal(delta[1], torch.zeros(2))  # no shift where grad V = 0
    kl = kl_budget.gaussian_shift_kl(delta, sigma)
    assert kl[0].item() == pytest.approx(0.08, rel=1e-6)
    assert kl[1].item() == 0.0


def test_mean_shift_temperature_matches_the_linear_tilt():
    sigma = torch.tensor([[1.0, 2.0]])
    grad = torch.tensor([[3.0, 2.0]])
    eta = kl_budget.mean_shift_temperature(sigma, grad, 0.08, gamma=0.9)
    assert eta.item() == pytest.approx(0.9 * 5.0 / 0.4)
    # the tilt exp(gamma g.x / eta) moves the mean by sigma^2 gamma g / eta: the same delta
    shift = sigma**2 * 0.9 * grad / eta
    assert torch.allclose(shift, kl_budget.mean_shift(sigma, grad, 0.08))
    assert math.isinf(kl_budget.mean_shift_temperature(sigma, 0 * grad, 0.08, 0.9).item())


def test_tilt_kl_of_hand_made_weights():
    w = torch.tensor([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    kl = kl_budget.tilt_kl(w.log())
    expected = [0.2 * math.log(0.4) + 0.8 * math.log(1.6), 0.0, math.log(2)]
    assert torch.allclose(kl, torch.tensor(expected))


def test_solve_temperature_two_draws():
    # weights (0.2, 0.8): KL = 0.2 log 0.4 + 0.8 log 1.6 = 0.192745; z gap 1 -> 1/eta = log 4
    eps = 0.2 * math.log(0.4) + 0.8 * math.log(1.6)
    eta, w, kl = kl_budget.solve_temperature(torch.tensor([[0.0, 1.0]]), eps)
    assert eta.item() == pytest.approx(1.0 / math.log(4.0), rel=1e-6)
    assert torch.allclose(w, torch.tensor([[0.2, 0.8]], dtype=torch.float64), atol=1e-7)
    assert kl.item() == pytest.approx(eps, rel=1e-7)


def test_solve_temperature_three_draws_and_a_shift_of_values():
    # z = (0, 0, log 2 * eta): with eta = 1 the weights are (1/4, 1/4, 1/2),
    # KL = 2 * 0.25 log(0.75) + 0.5 log(1.5)
    eps = 0.5 * math.log(0.75) + 0.5 * math.log(1.5)
    z = torch.tensor([[0.0, 0.0, math.log(2.0)], [5.0, 5.0, 5.0 + math.log(2.0)]])
    eta, w, kl = kl_budget.solve_temperature(z, eps)  # adding a constant changes nothing
    assert torch.allclose(eta, torch.ones(2, dtype=torch.float64), rtol=1e-6)
    assert torch.allclose(w[0], torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64), atol=1e-7)
    assert torch.allclose(kl, torch.full((2,), eps, dtype=torch.float64), rtol=1e-7)


def test_solve_temperature_equal_values_or_no_budget_stay_uniform():
    z = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 2.0, 3.0]])
    eta, w, kl = kl_budget.solve_temperature(z, 0.1)
    assert math.isinf(eta[0].item()) and kl[0].item() == 0.0
    assert torch.allclose(w[0], torch.full((4,), 0.25, dtype=torch.float64))
    assert kl[1].item() == pytest.approx(0.1, rel=1e-7)
    eta, w, kl = kl_budget.solve_temperature(z, 0.0)
    assert torch.isinf(eta).all() and torch.equal(kl, torch.zeros(2, dtype=torch.float64))


def test_solve_temperature_caps_a_budget_beyond_log_k():
    z = torch.tensor([[0.0, 3.0, 3.0, 1.0]])  # two draws tied at the maximum: KL <= log 2
    eta, w, kl = kl_budget.solve_temperature(z, 5.0)
    assert eta.item() == 0.0
    assert torch.allclose(w, torch.tensor([[0.0, 0.5, 0.5, 0.0]], dtype=torch.float64))
    assert kl.item() == pytest.approx(math.log(2.0))


def test_value_gain_of_the_tilted_weights():
    w = torch.tensor([[0.2, 0.8]], dtype=torch.float64)
    z = torch.tensor([[0.0, 1.0]])
    assert kl_budget.value_gain(w, z).item() == pytest.approx(0.8 - 0.5)


@pytest.mark.parametrize(
    "args, match",
    [
        (("greedy", 0.1), "method must be one of"),
        (("resample", -0.1), "kl_budget must be a number >= 0"),
        (("resample", float("nan")), "kl_budget must be a number >= 0"),
        (("resample", 0.1, 1), "num_samples must be an integer >= 2"),
    ],
)
def test_bad_settings_are_refused(args, match):
    with pytest.raises(ValueError, match=match):
        kl_budget.check_optimism_settings(*args)
