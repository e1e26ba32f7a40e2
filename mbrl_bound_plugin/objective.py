"""The bound's pure math: augmented reward, model-step term, ratio diagnostics.

Everything here is a plain function of tensors (no ``nn.Module``, no I/O), so each
formula of ``docs/algorithm.md`` can be checked with hand-made numbers. The
discriminator's raw output ``logit C(s,a,s')`` estimates ``log p(s'|s,a) - log q(s'|s,a)``
("Estimating the ratio").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

AUGMENTED_REWARD_MODES = ("scaled", "bound")
RATIO_SCALES = ("none", "reward_std", "reward_rms")


def check_reward_settings(
    mode: str,
    gamma: float,
    lam: float,
    clip: float,
    reward_floor: float | None,
    scale: str = "none",
    warmup_epochs: int = 0,
) -> None:
    """Refuses augmented-reward settings that cannot work (see :func:`augmented_reward`).

    Args:
        mode: ``"scaled"`` or ``"bound"``.
        gamma: discount factor, in ``(0, 1)``.
        lam: weight of the log-ratio; must be ``>= 0``.
        clip: the bound ``c`` on the log-ratio; must be ``> 0``.
        reward_floor: required in mode ``"bound"``.
        scale: one of :data:`RATIO_SCALES` (the agent's scale of the ratio's weight);
            ``"none"`` in mode ``"bound"``, whose weight is fixed.
        warmup_epochs: epochs over which the weight ramps up; an integer ``>= 0``.

    Raises:
        ValueError: saying what to change.
    """
    if mode not in AUGMENTED_REWARD_MODES:
        raise ValueError(
            f"augmented reward mode must be one of {AUGMENTED_REWARD_MODES}, got {mode!r}"
        )
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    if clip <= 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must be in (0, 1), got {gamma}")
    if mode == "bound" and reward_floor is None:
        raise ValueError(
            "mode 'bound' needs reward_floor, a number below every reward of the task "
            "(e.g. reward_floor=-1); or use mode 'scaled'"
        )
    if scale not in RATIO_SCALES:
        raise ValueError(f"scale must be one of {RATIO_SCALES}, got {scale!r}")
    if mode == "bound" and scale != "none":
        raise ValueError("mode 'bound' has no free weight to scale; set scale=none")
    if (
        not isinstance(warmup_epochs, int | float)
        or isinstance(warmup_epochs, bool)
        or int(warmup_epochs) != warmup_epochs
        or warmup_epochs < 0
    ):
        raise ValueError(f"warmup_epochs must be an integer >= 0, got {warmup_epochs!r}")


def check_model_settings(
    beta: float, bound_batch_size: int | None = None, clamp_value: bool = False
) -> None:
    """Refuses model-step settings that cannot work (see :func:`model_bound_term`).

    Args:
        beta: weight of the bound term in the model loss; must be ``>= 0``.
        bound_batch_size: rows of each member's batch that get the bound term; an
            integer ``>= 1``, or ``None`` for every row.
        clamp_value: whether ``V(ŝ')`` is clamped (:func:`value_bounds`); a bool.

    Raises:
        ValueError: saying what to change.
    """
    if not isinstance(beta, int | float) or beta < 0:
        raise ValueError(f"beta must be >= 0 (0 is MBPO's model training), got {beta}")
    if bound_batch_size is not None and (
        not isinstance(bound_batch_size, int | float)
        or int(bound_batch_size) != bound_batch_size
        or bound_batch_size < 1
    ):
        raise ValueError(
            f"bound_batch_size must be an integer >= 1 or null (every row), got {bound_batch_size}"
        )
    if not isinstance(clamp_value, bool):
        raise ValueError(f"clamp_value must be true or false, got {clamp_value!r}")


def check_rewards_above_floor(reward: torch.Tensor, reward_floor: float) -> None:
    """Refuses rewards at or below the floor (mode ``"bound"`` takes ``log(r - floor)``).

    Args:
        reward: rewards, any shape.
        reward_floor: the configured floor.

    Raises:
        ValueError: naming the smallest reward and the floor.
    """
    if reward.numel() > 0 and bool((reward <= reward_floor).any()):
        smallest = reward.min().item()
        raise ValueError(
            f"reward_floor is {reward_floor}, not below an observed reward {smallest} "
            "(mode 'bound' takes log(r - reward_floor)); lower reward_floor"
        )


def ratio_weight(mode: str, lam: float) -> float:
    """The log-ratio's weight before scale and warm-up: ``lam``, or 1 in mode ``bound``."""
    return 1.0 if mode == "bound" else float(lam)


def ratio_term(logit: torch.Tensor, weight: float, clip: float) -> torch.Tensor:
    """The bounded log-ratio term both players read: ``weight * c * tanh(logit / c)``.

    A smooth clip: about ``weight * logit`` for ``|logit|`` well below ``c``, never beyond
    ``weight * c``, and with a gradient everywhere (the model step differentiates it).

    Args:
        logit: discriminator logits ``logit C(s,a,ŝ')``, any shape.
        weight: the term's weight (``lam``, times the scale and warm-up if any).
        clip: the bound ``c`` on the log-ratio; must be ``> 0``.

    Returns:
        A tensor of the shape of ``logit``.
    """
    if clip <= 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    return weight * clip * torch.tanh(logit / clip)


def task_reward_term(
    reward: torch.Tensor, mode: str, gamma: float, reward_floor: float | None
) -> torch.Tensor:
    """``f(r)``: ``r`` in mode ``scaled``, ``(1 - gamma) * log(r - reward_floor)`` in ``bound``.

    Raises:
        ValueError: in mode ``bound``, a reward at or below ``reward_floor``.
    """
    if mode == "scaled":
        return reward
    check_rewards_above_floor(reward, reward_floor)
    return (1.0 - gamma) * torch.log(reward - reward_floor)


def augmented_reward(
    reward: torch.Tensor,
    logit: torch.Tensor,
    mode: str,
    gamma: float,
    lam: float,
    clip: float,
    reward_floor: float | None,
    ratio_factor: float = 1.0,
    center: bool = False,
) -> torch.Tensor:
    """The reward SAC maximizes inside the model (deep algorithm, step 3).

    ``rt = f(r) + w * c * tanh(logit C(s,a,s') / c)`` (:func:`ratio_term`), with
    ``w = lam * ratio_factor`` and

    - mode ``"scaled"``: ``f(r) = r`` and ``lam`` as given (``lam = 0`` is MBPO's reward);
    - mode ``"bound"``: ``f(r) = (1 - gamma) * log(r - reward_floor)`` and ``lam = 1``
      (the given ``lam`` is ignored), which is the bound itself.

    Args:
        reward: predicted rewards ``r̂``, any shape.
        logit: discriminator logits ``logit C(s,a,ŝ')`` for the same transitions, same
            shape as ``reward`` (no broadcasting, to catch ``B`` vs ``B x 1`` mix-ups).
        mode: ``"scaled"`` or ``"bound"``.
        gamma: discount factor, in ``(0, 1)``.
        lam: weight of the log-ratio in mode ``"scaled"``; must be ``>= 0``.
        clip: the bound ``c`` on the log-ratio; must be ``> 0``.
        reward_floor: a number below every reward the task can give; required in mode
            ``"bound"``, unused in mode ``"scaled"``.
        ratio_factor: a further factor on the ratio's weight (the agent's scale and
            warm-up); 1 by default.
        center: subtract the batch mean of the ratio term (:func:`center_ratio`), so
            that a constant offset of the logit (a saturated or biased discriminator)
            adds nothing to the reward and only relative realism is paid.

    Returns:
        The augmented reward, same shape as ``reward``.

    Raises:
        ValueError: on an unknown mode, ``lam < 0``, ``clip <= 0``, ``gamma`` outside
            ``(0, 1)``, mismatched shapes, mode ``"bound"`` without ``reward_floor``, or a
            reward at or below ``reward_floor`` in mode ``"bound"``.
    """
    check_reward_settings(mode, gamma, lam, clip, reward_floor)
    if reward.shape != logit.shape:
        raise ValueError(
            f"reward and logit must have the same shape, got {tuple(reward.shape)} and "
            f"{tuple(logit.shape)}; reshape one of them (e.g. squeeze a trailing 1)"
        )
    ratio = ratio_term(logit, ratio_weight(mode, lam) * ratio_factor, clip)
    if center:
        ratio = center_ratio(ratio)
    return task_reward_term(reward, mode, gamma, reward_floor) + ratio


def center_ratio(ratio: torch.Tensor) -> torch.Tensor:
    """The ratio term minus its mean over the batch: ``g - mean(g)``.

    A per-step constant in the reward changes the value of ending an episode: a
    saturated log-ratio (``g = -w * c`` everywhere) is a cost of ``w * c`` per step, and
    when it exceeds the task's reward, terminating pays. Centered, a constant ``g`` is
    0 and only the differences between the batch's transitions (relative realism)
    reach SAC.

    Args:
        ratio: the ratio term of one batch, any shape (an empty batch is returned as is).

    Returns:
        A tensor of the shape of ``ratio``, with mean 0.
    """
    if ratio.numel() == 0:
        return ratio
    return ratio - ratio.mean()


def value_bounds(
    real_value: torch.Tensor, real_done: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[min, max]`` of ``V`` over real next states that are not terminal.

    The range the critic has evidence for: the model step clamps ``V(ŝ')`` to it
    (:func:`model_bound_term`), so that a model cannot gain by moving ``ŝ'`` to where the
    critic only extrapolates. Computed without gradient.

    Args:
        real_value: ``V(s')`` at real next states, any shape.
        real_done: whether each ``s'`` is terminal, same shape; ``None``: none is. When
            every ``s'`` is terminal, all of them are used.

    Returns:
        Two scalar tensors, ``low <= high``.
    """
    with torch.no_grad():
        values = real_value.flatten()
        if real_done is not None:
            if real_done.shape != real_value.shape:
                raise ValueError(
                    f"real_value and real_done must have the same shape, got "
                    f"{tuple(real_value.shape)} and {tuple(real_done.shape)}"
                )
            alive = ~real_done.flatten().bool()
            if bool(alive.any()):
                values = values[alive]
        if values.numel() == 0:
            raise ValueError("value_bounds needs at least one real next state")
        return values.min(), values.max()


def model_bound_term(
    ratio: torch.Tensor,
    value: torch.Tensor,
    gamma: float,
    done: torch.Tensor | None = None,
    bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The bound's part of the model loss (deep algorithm, step 2), per sample, before ``beta``.

    ``-( g(logit C(s,a,ŝ')) + gamma * (1 - done(ŝ')) * V(ŝ') )`` for each sample ``ŝ' ~ q``,
    where ``g`` is the policy's own :func:`ratio_term`. Gradients flow through ``ratio``
    and ``value`` (the caller freezes ``C`` and ``V`` so that only ``ŝ'`` carries them back
    to the model); ``done`` carries none. The caller averages over samples.

    With ``bounds`` (from :func:`value_bounds`), ``V(ŝ')`` is first clamped to
    ``[low, high]``: beyond the values seen at real next states it is constant, so it has
    no gradient there, and only the NLL and the ratio term act on such samples.

    Args:
        ratio: the ratio term ``g(logit)`` at model samples ``ŝ'``, any shape.
        value: ``V(ŝ')`` at the same samples, same shape as ``ratio``.
        gamma: discount factor.
        done: whether ``ŝ'`` is terminal, same shape (bool or 0/1); ``None``: never.
        bounds: ``(low, high)`` to clamp ``value`` to; ``None``: no clamp.

    Returns:
        A tensor of the shape of ``ratio``, to be minimized.

    Raises:
        ValueError: if the shapes differ.
    """
    for name, x in (("value", value), ("done", done)):
        if x is not None and x.shape != ratio.shape:
            raise ValueError(
                f"ratio and {name} must have the same shape, got {tuple(ratio.shape)} and "
                f"{tuple(x.shape)}"
            )
    if bounds is not None:
        value = torch.clamp(value, min=bounds[0].detach(), max=bounds[1].detach())
    if done is not None:
        value = value * (1.0 - done.to(value.dtype).detach())  # no value after a terminal state
    return -(ratio + gamma * value)


def calibration(real_logits: torch.Tensor, model_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Checks of a log-ratio: ``E_q[exp(logit)]`` and ``E_p[exp(-logit)]``, both 1 if calibrated.

    For ``logit = log p/q`` exactly, ``E_{s'~q}[p/q] = 1`` and ``E_{s'~p}[q/p] = 1``; far from
    1 means the ratio term is noise, whatever the accuracy says. Computed as the exp of a
    log-mean-exp (finite until the mean itself overflows float64).

    Args:
        real_logits: logits at real transitions ``s' ~ p``.
        model_logits: logits at model transitions ``s' ~ q``.

    Returns:
        ``exp_logit_model`` and ``exp_neglogit_real``, scalar float64 tensors.
    """

    def mean_exp(x: torch.Tensor) -> torch.Tensor:
        x = x.double().flatten()
        return torch.exp(torch.logsumexp(x, 0) - math.log(x.numel()))

    return {
        "exp_logit_model": mean_exp(model_logits),
        "exp_neglogit_real": mean_exp(-real_logits),
    }


def kl_estimate(model_logits: torch.Tensor) -> torch.Tensor:
    """Estimate of ``KL(q || p)``: ``-mean logit C`` over model transitions ``s' ~ q``.

    Args:
        model_logits: discriminator logits at transitions sampled from the model.

    Returns:
        A scalar tensor.
    """
    return -model_logits.mean()


def logistic_loss(real_logits: torch.Tensor, model_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's logistic loss (deep algorithm, step 1).

    ``-mean log sigmoid(real) - mean log(1 - sigmoid(model))``, written with
    ``softplus`` (``-log sigmoid(x) = softplus(-x)``, ``-log(1 - sigmoid(x)) = softplus(x)``)
    so it stays finite for large logits.

    Args:
        real_logits: logits at real transitions ``s' ~ p`` (label 1).
        model_logits: logits at model transitions ``s' ~ q`` (label 0).

    Returns:
        A scalar tensor.
    """
    return F.softplus(-real_logits).mean() + F.softplus(model_logits).mean()


def balanced_accuracy(real_logits: torch.Tensor, model_logits: torch.Tensor) -> torch.Tensor:
    """Balanced accuracy of the discriminator (0.5 means ``q`` looks like ``p``).

    ``(mean(real > 0) + mean(model <= 0)) / 2``.

    Args:
        real_logits: logits at real transitions (correct when ``> 0``).
        model_logits: logits at model transitions (correct when ``<= 0``).

    Returns:
        A scalar float tensor in ``[0, 1]``.
    """
    real_correct = (real_logits > 0).float().mean()
    model_correct = (model_logits <= 0).float().mean()
    return (real_correct + model_correct) / 2
