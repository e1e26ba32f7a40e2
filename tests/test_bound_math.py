"""The bound's pure math, checked against numbers worked out by hand."""

import math

import pytest
import torch

from mbrl_bound_plugin import objective


def _g(x: float, weight: float, clip: float) -> float:
    """The smooth clip by hand: ``weight * c * tanh(x / c)``."""
    return weight * clip * math.tanh(x / clip)


def test_augmented_reward_scaled_adds_lam_times_smoothly_clipped_logit():
    reward = torch.tensor([1.0, -2.0, 0.5, 3.0])
    logit = torch.tensor([0.4, -7.0, 5.0, -1.0])
    out = objective.augmented_reward(
        reward, logit, "scaled", gamma=0.9, lam=0.5, clip=2.0, reward_floor=None
    )
    # r + 0.5 * 2 * tanh(logit / 2)
    expected = torch.tensor(
        [r + _g(x, 0.5, 2.0) for r, x in zip(reward.tolist(), logit.tolist(), strict=True)]
    )
    torch.testing.assert_close(out, expected)
    # tanh(0.2) = 0.19738 (close to 0.2: small logits pass almost unchanged); tanh(-3.5) = -0.99818
    assert out[0].item() == pytest.approx(1.0 + 0.5 * 2.0 * 0.197375, abs=1e-5)
    assert out[1].item() == pytest.approx(-2.0 - 0.5 * 2.0 * 0.998178, abs=1e-5)


def test_augmented_reward_scaled_lam_zero_is_the_plain_reward():
    reward = torch.tensor([1.0, -2.0, 0.25])
    logit = torch.tensor([100.0, -100.0, 3.0])
    out = objective.augmented_reward(
        reward, logit, "scaled", gamma=0.99, lam=0.0, clip=5.0, reward_floor=None
    )
    torch.testing.assert_close(out, reward)


def test_augmented_reward_bound_mode_by_hand():
    reward = torch.tensor([2.0, 1.0 + math.e, 1.5])
    logit = torch.tensor([0.3, 10.0, -10.0])
    # lam is ignored in bound mode (fixed to 1)
    out = objective.augmented_reward(
        reward, logit, "bound", gamma=0.9, lam=123.0, clip=1.0, reward_floor=1.0
    )
    # 0.1 * log(2 - 1) + tanh(0.3)
    # 0.1 * log(e) + tanh(10)
    # 0.1 * log(0.5) + tanh(-10)
    expected = torch.tensor(
        [math.tanh(0.3), 0.1 + math.tanh(10.0), 0.1 * math.log(0.5) + math.tanh(-10.0)]
    )
    torch.testing.assert_close(out, expected)


def test_augmented_reward_bound_mode_negative_floor():
    reward = torch.tensor([-1.0])
    logit = torch.tensor([0.0])
    out = objective.augmented_reward(
        reward, logit, "bound", gamma=0.5, lam=1.0, clip=1.0, reward_floor=-3.0
    )
    # 0.5 * log(-1 - (-3)) = 0.5 * log 2
    torch.testing.assert_close(out, torch.tensor([0.5 * math.log(2.0)]))


def test_augmented_reward_gradient_is_the_smooth_clips_everywhere():
    logit = torch.tensor([0.5, 3.0, -20.0], requires_grad=True)
    out = objective.augmented_reward(
        torch.zeros(3), logit, "scaled", gamma=0.9, lam=2.0, clip=1.0, reward_floor=None
    )
    out.sum().backward()
    # d/dx [2 * tanh(x)] = 2 * (1 - tanh(x)^2): never exactly 0, unlike a hard clamp
    expected = torch.tensor([2.0 * (1.0 - math.tanh(x) ** 2) for x in (0.5, 3.0, -20.0)])
    torch.testing.assert_close(logit.grad, expected)
    assert logit.grad[1].item() > 0.0


def test_ratio_term_by_hand_bounded_and_odd():
    logit = torch.tensor([-1000.0, -3.0, -0.01, 0.0, 0.01, 3.0, 1000.0])
    out = objective.ratio_term(logit, weight=0.5, clip=4.0)
    expected = torch.tensor([_g(x, 0.5, 4.0) for x in logit.tolist()])
    torch.testing.assert_close(out, expected)
    # never beyond weight * c, reached only far out; odd; about weight * logit near 0
    assert out.abs().max().item() <= 0.5 * 4.0
    assert out[-1].item() == pytest.approx(2.0) and out[0].item() == pytest.approx(-2.0)
    torch.testing.assert_close(out, -out.flip(0))
    assert out[4].item() == pytest.approx(0.5 * 0.01, rel=1e-4)
    assert out.shape == logit.shape


def test_ratio_term_gradient_by_hand():
    logit = torch.tensor([[0.0, 1.0], [-2.0, 6.0]], requires_grad=True)
    objective.ratio_term(logit, weight=3.0, clip=2.0).sum().backward()
    # d/dx [w c tanh(x / c)] = w (1 - tanh(x / c)^2)
    expected = torch.tensor(
        [[3.0 * (1.0 - math.tanh(x / 2.0) ** 2) for x in row] for row in ([0.0, 1.0], [-2.0, 6.0])]
    )
    torch.testing.assert_close(logit.grad, expected)
    assert logit.grad[0, 0].item() == pytest.approx(3.0)  # the weight itself at logit 0


@pytest.mark.parametrize("clip", [0.0, -1.0])
def test_ratio_term_refuses_a_non_positive_clip(clip):
    with pytest.raises(ValueError, match="clip must be > 0"):
        objective.ratio_term(torch.zeros(2), weight=1.0, clip=clip)


def test_ratio_weight_is_lam_in_scaled_mode_and_one_in_bound_mode():
    assert objective.ratio_weight("scaled", 0.25) == 0.25
    assert objective.ratio_weight("scaled", 0.0) == 0.0
    assert objective.ratio_weight("bound", 0.25) == 1.0
    assert objective.ratio_weight("bound", 7.0) == 1.0


def test_task_reward_term_by_hand():
    reward = torch.tensor([-2.0, 0.0, 3.5])
    # scaled: f(r) = r, any sign
    torch.testing.assert_close(objective.task_reward_term(reward, "scaled", 0.9, None), reward)
    # bound: f(r) = (1 - gamma) log(r - floor)
    out = objective.task_reward_term(reward, "bound", gamma=0.8, reward_floor=-3.0)
    expected = torch.tensor([0.2 * math.log(1.0), 0.2 * math.log(3.0), 0.2 * math.log(6.5)])
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="reward_floor is -2.0"):
        objective.task_reward_term(reward, "bound", gamma=0.8, reward_floor=-2.0)


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
        objective.augmented_reward(torch.ones(3), torch.zeros(3), **args)


def test_augmented_reward_bound_mode_rejects_reward_at_or_below_floor():
    reward = torch.tensor([3.0, -0.25, 1.0])
    with pytest.raises(ValueError) as info:
        objective.augmented_reward(
            reward, torch.zeros(3), "bound", gamma=0.9, lam=1.0, clip=1.0, reward_floor=0.0
        )
    message = str(info.value)
    assert "-0.25" in message  # the smallest reward
    assert "reward_floor is 0.0" in message
    # equal to the floor is also refused (log 0)
    with pytest.raises(ValueError, match="reward_floor"):
        objective.augmented_reward(torch.tensor([1.0]), torch.zeros(1), "bound", 0.9, 1.0, 1.0, 1.0)


def test_augmented_reward_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        objective.augmented_reward(torch.ones(4, 1), torch.zeros(4), "scaled", 0.9, 1.0, 1.0, None)


def test_logistic_loss_by_hand():
    real = torch.tensor([0.0, 2.0])
    model = torch.tensor([-1.0, 0.5, 0.0])
    # -log sigmoid(0) = log 2; -log sigmoid(2) = log(1 + e^-2)
    real_part = (math.log(2.0) + math.log(1.0 + math.exp(-2.0))) / 2
    # -log(1 - sigmoid(x)) = log(1 + e^x)
    model_part = (
        math.log(1.0 + math.exp(-1.0)) + math.log(1.0 + math.exp(0.5)) + math.log(2.0)
    ) / 3
    out = objective.logistic_loss(real, model)
    assert out.item() == pytest.approx(real_part + model_part, rel=1e-6)


def test_logistic_loss_is_finite_for_huge_logits():
    real = torch.tensor([-200.0, 200.0])
    model = torch.tensor([200.0, -200.0])
    out = objective.logistic_loss(real, model)
    # the wrong-side logits each cost ~200: (200 + 0)/2 + (200 + 0)/2
    assert torch.isfinite(out)
    assert out.item() == pytest.approx(200.0, rel=1e-6)


def test_model_bound_term_is_per_sample_with_sign_and_gradient():
    logit = torch.tensor([1.0, -3.0], requires_grad=True)
    value = torch.tensor([10.0, 20.0], requires_grad=True)
    out = objective.model_bound_term(logit, value, gamma=0.5)
    # per sample, unreduced: -(1 + 0.5 * 10), -(-3 + 0.5 * 20)
    assert out.shape == (2,)
    torch.testing.assert_close(out, torch.tensor([-6.0, -7.0]))
    out.sum().backward()
    # minimizing it raises the ratio term (d/dg = -1) and the value (d/dV = -gamma)
    torch.testing.assert_close(logit.grad, torch.tensor([-1.0, -1.0]))
    torch.testing.assert_close(value.grad, torch.tensor([-0.5, -0.5]))


@pytest.mark.parametrize("as_bool", [True, False])
def test_model_bound_term_drops_the_value_after_a_terminal_state(as_bool):
    ratio = torch.tensor([[1.0, 2.0], [-1.0, 0.5]], requires_grad=True)
    value = torch.tensor([[10.0, 20.0], [30.0, 40.0]], requires_grad=True)
    done_01 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    done = done_01.bool() if as_bool else done_01.clone().requires_grad_(True)
    out = objective.model_bound_term(ratio, value, gamma=0.9, done=done)
    # terminal samples keep their ratio term only: -(g + 0.9 * (1 - done) * V)
    expected = torch.tensor([[-(1.0 + 9.0), -2.0], [1.0, -(0.5 + 36.0)]])
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    torch.testing.assert_close(value.grad, -0.9 * (1.0 - done_01))  # no V gradient where done
    torch.testing.assert_close(ratio.grad, -torch.ones(2, 2))
    if not as_bool:
        assert done.grad is None  # done carries no gradient


def test_model_bound_term_without_done_is_all_nonterminal():
    ratio, value = torch.tensor([0.5, -0.5]), torch.tensor([2.0, -4.0])
    torch.testing.assert_close(
        objective.model_bound_term(ratio, value, 0.9),
        objective.model_bound_term(ratio, value, 0.9, done=torch.zeros(2, dtype=torch.bool)),
    )


def test_model_bound_term_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        objective.model_bound_term(torch.zeros(3, 2), torch.zeros(3, 2, 1), gamma=0.9)
    with pytest.raises(ValueError, match="ratio and done"):
        objective.model_bound_term(torch.zeros(3), torch.zeros(3), 0.9, done=torch.zeros(3, 1))


def test_value_bounds_are_the_range_over_nonterminal_real_next_states():
    real_value = torch.tensor([[3.0, -2.0, 50.0], [1.0, 7.0, -40.0]])
    done = torch.tensor([[False, False, True], [False, False, True]])
    low, high = objective.value_bounds(real_value, done)
    assert (low.item(), high.item()) == (-2.0, 7.0)  # 50 and -40 are after terminal states
    low, high = objective.value_bounds(real_value)
    assert (low.item(), high.item()) == (-40.0, 50.0)
    # every next state terminal: all of them, rather than no range at all
    low, high = objective.value_bounds(real_value, torch.ones(2, 3, dtype=torch.bool))
    assert (low.item(), high.item()) == (-40.0, 50.0)


def test_value_bounds_carry_no_gradient_and_refuse_bad_input():
    real_value = torch.tensor([1.0, 4.0], requires_grad=True)
    low, high = objective.value_bounds(real_value)
    assert not low.requires_grad and not high.requires_grad
    with pytest.raises(ValueError, match="same shape"):
        objective.value_bounds(torch.zeros(3), torch.zeros(3, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one"):
        objective.value_bounds(torch.zeros(0))


def test_model_bound_term_clamps_the_value_to_the_bounds_with_no_gradient_beyond():
    ratio = torch.tensor([0.5, 0.5, 0.5, 0.5], requires_grad=True)
    value = torch.tensor([-5.0, 0.0, 2.0, 1e6], requires_grad=True)
    bounds = (torch.tensor(-1.0), torch.tensor(3.0))
    out = objective.model_bound_term(ratio, value, gamma=0.5, bounds=bounds)
    # V clamped to [-1, 3]: -(0.5 + 0.5 * [-1, 0, 2, 3])
    torch.testing.assert_close(out, torch.tensor([0.0, -0.5, -1.5, -2.0]))
    out.sum().backward()
    # inside the range the value's gradient is -gamma, beyond it none: no gain from going further
    torch.testing.assert_close(value.grad, torch.tensor([0.0, -0.5, -0.5, 0.0]))
    torch.testing.assert_close(ratio.grad, -torch.ones(4))
    # a clamped sample after a terminal state still has no value at all
    done = torch.tensor([False, False, False, True])
    out = objective.model_bound_term(ratio, value, gamma=0.5, done=done, bounds=bounds)
    assert out[3].item() == -0.5


def test_check_model_settings_refuses_a_non_bool_clamp_value():
    objective.check_model_settings(0.1, None, False)
    with pytest.raises(ValueError, match="clamp_value must be true or false"):
        objective.check_model_settings(0.1, None, "yes")


def test_kl_estimate_and_balanced_accuracy_by_hand():
    assert objective.kl_estimate(torch.tensor([-1.0, -2.0, 0.0])).item() == pytest.approx(1.0)
    real = torch.tensor([1.0, -1.0, 2.0, 0.0])  # 2 of 4 correct (> 0)
    model = torch.tensor([-1.0, 0.0, 3.0])  # 2 of 3 correct (<= 0)
    acc = objective.balanced_accuracy(real, model)
    assert acc.item() == pytest.approx((0.5 + 2.0 / 3.0) / 2)


# p and q on three states, and samples from each in exact proportion (10 draws each)
_P, _Q = (0.5, 0.3, 0.2), (0.2, 0.3, 0.5)
_FROM_P = [0] * 5 + [1] * 3 + [2] * 2
_FROM_Q = [0] * 2 + [1] * 3 + [2] * 5


def _discrete_log_ratio(offset: float = 0.0):
    log_ratio = torch.tensor(
        [math.log(p / q) for p, q in zip(_P, _Q, strict=True)], dtype=torch.float64
    )
    log_ratio = log_ratio + offset
    return log_ratio[_FROM_P], log_ratio[_FROM_Q]


def test_calibration_of_the_exact_discrete_log_ratio_is_one():
    real, model = _discrete_log_ratio()
    calib = objective.calibration(real, model)
    assert set(calib) == {"exp_logit_model", "exp_neglogit_real"}
    # E_q[p/q] = sum p = 1 and E_p[q/p] = sum q = 1, exactly with these draws
    assert calib["exp_logit_model"].item() == pytest.approx(1.0, abs=1e-12)
    assert calib["exp_neglogit_real"].item() == pytest.approx(1.0, abs=1e-12)
    assert calib["exp_logit_model"].dtype == torch.float64


def test_calibration_by_hand_for_a_shifted_log_ratio():
    # logit = log p/q + 1: E_q[e p/q] = e and E_p[q/(e p)] = 1/e
    real, model = _discrete_log_ratio(offset=1.0)
    calib = objective.calibration(real, model)
    assert calib["exp_logit_model"].item() == pytest.approx(math.e, rel=1e-6)
    assert calib["exp_neglogit_real"].item() == pytest.approx(1.0 / math.e, rel=1e-6)
    # the two checks read different samples: swapping them is not the same
    swapped = objective.calibration(model, real)
    assert swapped["exp_logit_model"].item() != pytest.approx(math.e, rel=1e-3)


def test_calibration_of_the_exact_gaussian_log_ratio_is_one():
    # p = N(0, 1), q = N(1, 1): log p/q (x) = 0.5 - x
    gen = torch.Generator().manual_seed(0)
    from_p = torch.randn(400_000, generator=gen, dtype=torch.float64)
    from_q = 1.0 + torch.randn(400_000, generator=gen, dtype=torch.float64)
    calib = objective.calibration(0.5 - from_p, 0.5 - from_q)
    assert calib["exp_logit_model"].item() == pytest.approx(1.0, abs=0.02)
    assert calib["exp_neglogit_real"].item() == pytest.approx(1.0, abs=0.02)
    # the reversed log-ratio is far off in both
    wrong = objective.calibration(from_p - 0.5, from_q - 0.5)
    assert wrong["exp_logit_model"].item() > 2.0 and wrong["exp_neglogit_real"].item() > 2.0


def test_calibration_stays_finite_where_float32_exp_overflows():
    # exp(100) overflows float32; the mean (e^100 + 1) / 2 is finite in float64
    calib = objective.calibration(torch.tensor([-100.0, 0.0]), torch.tensor([100.0, 0.0]))
    for key in ("exp_logit_model", "exp_neglogit_real"):
        assert calib[key].item() == pytest.approx((math.exp(100.0) + 1.0) / 2.0, rel=1e-9)


def test_center_ratio_subtracts_the_batch_mean():
    ratio = torch.tensor([-5.0, -3.0, -1.0])
    assert torch.allclose(objective.center_ratio(ratio), torch.tensor([-2.0, 0.0, 2.0]))
    assert objective.center_ratio(torch.zeros(0)).numel() == 0


def test_centered_augmented_reward_ignores_a_constant_logit():
    reward = torch.tensor([1.0, 2.0])
    rt = objective.augmented_reward(
        reward, torch.full((2,), -50.0), "scaled", 0.9, 0.5, 10.0, None, center=True
    )
    assert torch.allclose(rt, reward)
    uncentered = objective.augmented_reward(
        reward, torch.full((2,), -50.0), "scaled", 0.9, 0.5, 10.0, None
    )
    assert torch.allclose(uncentered, reward - 5.0 * math.tanh(5.0))
