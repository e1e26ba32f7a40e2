"""The bound's pure math, checked against numbers worked out by hand."""

import math

import pytest
import torch

from mbrl_bound_plugin import bound


def test_augmented_reward_scaled_adds_lam_times_clipped_logit():
    reward = torch.tensor([1.0, -2.0, 0.5, 3.0])
    logit = torch.tensor([0.4, -7.0, 5.0, -1.0])
    out = bound.augmented_reward(
        reward, logit, "scaled", gamma=0.9, lam=0.5, clip=2.0, reward_floor=None
    )
    # clip(logit, -2, 2) = [0.4, -2, 2, -1]; r + 0.5 * that
    expected = torch.tensor([1.2, -3.0, 1.5, 2.5])
    torch.testing.assert_close(out, expected)


def test_augmented_reward_scaled_lam_zero_is_the_plain_reward():
    reward = torch.tensor([1.0, -2.0, 0.25])
    logit = torch.tensor([100.0, -100.0, 3.0])
    out = bound.augmented_reward(
        reward, logit, "scaled", gamma=0.99, lam=0.0, clip=5.0, reward_floor=None
    )
    torch.testing.assert_close(out, reward)


def test_augmented_reward_bound_mode_by_hand():
    reward = torch.tensor([2.0, 1.0 + math.e, 1.5])
    logit = torch.tensor([0.3, 10.0, -10.0])
    # lam is ignored in bound mode (fixed to 1)
    out = bound.augmented_reward(
        reward, logit, "bound", gamma=0.9, lam=123.0, clip=1.0, reward_floor=1.0
    )
    # 0.1 * log(2 - 1) + 0.3 = 0.3
    # 0.1 * log(e) + clip(10 -> 1) = 0.1 + 1
    # 0.1 * log(0.5) + clip(-10 -> -1) = 0.1 * (-0.693147...) - 1
    expected = torch.tensor([0.3, 1.1, 0.1 * math.log(0.5) - 1.0])
    torch.testing.assert_close(out, expected)


def test_augmented_reward_bound_mode_negative_floor():
    reward = torch.tensor([-1.0])
    logit = torch.tensor([0.0])
    out = bound.augmented_reward(
        reward, logit, "bound", gamma=0.5, lam=1.0, clip=1.0, reward_floor=-3.0
    )
    # 0.5 * log(-1 - (-3)) = 0.5 * log 2
    torch.testing.assert_close(out, torch.tensor([0.5 * math.log(2.0)]))


def test_augmented_reward_keeps_gradient_through_unclipped_logit_only():
    logit = torch.tensor([0.5, 3.0], requires_grad=True)
    out = bound.augmented_reward(
        torch.zeros(2), logit, "scaled", gamma=0.9, lam=2.0, clip=1.0, reward_floor=None
    )
    out.sum().backward()
    torch.testing.assert_close(logit.grad, torch.tensor([2.0, 0.0]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "optimistic"}, "mode"),
        ({"lam": -1.0}, "lam must be >= 0"),
        ({"clip": 0.0}, "clip must be > 0"),
        ({"clip": -1.0}, "clip must be > 0"),
        ({"gamma": 1.0}, "gamma"),
        ({"mode": "bound", "reward_floor": None}, "reward_floor"),
    ],
)
def test_augmented_reward_rejects_bad_settings(kwargs, match):
    args = {"mode": "scaled", "gamma": 0.9, "lam": 1.0, "clip": 1.0, "reward_floor": 0.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        bound.augmented_reward(torch.ones(3), torch.zeros(3), **args)


def test_augmented_reward_bound_mode_rejects_reward_at_or_below_floor():
    reward = torch.tensor([3.0, -0.25, 1.0])
    with pytest.raises(ValueError) as info:
        bound.augmented_reward(
            reward, torch.zeros(3), "bound", gamma=0.9, lam=1.0, clip=1.0, reward_floor=0.0
        )
    message = str(info.value)
    assert "-0.25" in message  # the smallest reward
    assert "reward_floor is 0.0" in message
    # equal to the floor is also refused (log 0)
    with pytest.raises(ValueError, match="reward_floor"):
        bound.augmented_reward(torch.tensor([1.0]), torch.zeros(1), "bound", 0.9, 1.0, 1.0, 1.0)


def test_augmented_reward_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        bound.augmented_reward(torch.ones(4, 1), torch.zeros(4), "scaled", 0.9, 1.0, 1.0, None)


def test_logistic_loss_by_hand():
    real = torch.tensor([0.0, 2.0])
    model = torch.tensor([-1.0, 0.5, 0.0])
    # -log sigmoid(0) = log 2; -log sigmoid(2) = log(1 + e^-2)
    real_part = (math.log(2.0) + math.log(1.0 + math.exp(-2.0))) / 2
    # -log(1 - sigmoid(x)) = log(1 + e^x)
    model_part = (
        math.log(1.0 + math.exp(-1.0)) + math.log(1.0 + math.exp(0.5)) + math.log(2.0)
    ) / 3
    out = bound.logistic_loss(real, model)
    assert out.item() == pytest.approx(real_part + model_part, rel=1e-6)


def test_logistic_loss_is_finite_for_huge_logits():
    real = torch.tensor([-200.0, 200.0])
    model = torch.tensor([200.0, -200.0])
    out = bound.logistic_loss(real, model)
    # the wrong-side logits each cost ~200: (200 + 0)/2 + (200 + 0)/2
    assert torch.isfinite(out)
    assert out.item() == pytest.approx(200.0, rel=1e-6)


def test_model_bound_term_sign_and_gradient():
    logit = torch.tensor([1.0, -3.0], requires_grad=True)
    value = torch.tensor([10.0, 20.0], requires_grad=True)
    out = bound.model_bound_term(logit, value, gamma=0.5)
    # -mean(1 + 5, -3 + 10) = -(6 + 7) / 2
    assert out.item() == pytest.approx(-6.5)
    out.backward()
    # minimizing it raises logits (d/dlogit = -1/n) and values (d/dV = -gamma/n)
    torch.testing.assert_close(logit.grad, torch.tensor([-0.5, -0.5]))
    torch.testing.assert_close(value.grad, torch.tensor([-0.25, -0.25]))


def test_model_bound_term_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        bound.model_bound_term(torch.zeros(3, 2), torch.zeros(3, 2, 1), gamma=0.9)


def test_kl_estimate_and_balanced_accuracy_by_hand():
    assert bound.kl_estimate(torch.tensor([-1.0, -2.0, 0.0])).item() == pytest.approx(1.0)
    real = torch.tensor([1.0, -1.0, 2.0, 0.0])  # 2 of 4 correct (> 0)
    model = torch.tensor([-1.0, 0.0, 3.0])  # 2 of 3 correct (<= 0)
    acc = bound.balanced_accuracy(real, model)
    assert acc.item() == pytest.approx((0.5 + 2.0 / 3.0) / 2)
