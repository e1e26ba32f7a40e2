"""The model's budgeted optimism: pure math (``docs/algorithm.md``, "Budgeted optimism").

At rollout time the model's sample is tilted toward high value within a budget of
``eps`` nats per transition: ``max_q E_q[gamma V]`` subject to ``KL(q || q_mle) <= eps``,
whose solution is the bound's own form ``q ∝ q_mle * exp(gamma V / eta)``, ``eta`` the
constraint's multiplier. Two ways to draw from it, both plain tensor functions (no
``nn.Module``, no I/O), so they can be checked with hand-made numbers:

- :func:`mean_shift`: a Gaussian member with ``V`` linearized at its mean; the mean moves
  by ``delta = sigma * sqrt(2 eps) * u``, ``u = sigma * grad V / ||sigma * grad V||``,
  and ``KL = 0.5 * ||delta / sigma||^2 = eps`` exactly.
- :func:`solve_temperature`: ``K`` draws from ``q_mle`` with self-normalized weights
  ``w ∝ exp(gamma V / eta)``, ``eta`` found by bisection on ``log eta`` so that the
  weights' KL to uniform, ``sum w log(K w)``, is ``eps``.
"""

from __future__ import annotations

import math

import torch

OPTIMISM_METHODS = ("none", "mean_shift", "resample")
# bisection on log(eta / spread of gamma V): the bracket and the number of halvings
_LOG_ETA_RANGE = (-40.0, 10.0)
_BISECTION_STEPS = 48


def check_optimism_settings(method: str, kl_budget: float, num_samples: int = 16) -> None:
    """Refuses optimism settings that cannot work.

    Args:
        method: one of :data:`OPTIMISM_METHODS`.
        kl_budget: ``eps``, nats per transition; a finite number ``>= 0`` (0: no tilt).
        num_samples: ``K``, draws per transition for ``resample``; an integer ``>= 2``.

    Raises:
        ValueError: saying what to change.
    """
    if method not in OPTIMISM_METHODS:
        raise ValueError(f"method must be one of {OPTIMISM_METHODS}, got {method!r}")
    if (
        not isinstance(kl_budget, int | float)
        or isinstance(kl_budget, bool)
        or not math.isfinite(kl_budget)
        or kl_budget < 0
    ):
        raise ValueError(f"kl_budget must be a number >= 0 (nats; 0: no tilt), got {kl_budget!r}")
    if (
        not isinstance(num_samples, int | float)
        or isinstance(num_samples, bool)
        or int(num_samples) != num_samples
        or num_samples < 2
    ):
        raise ValueError(f"num_samples must be an integer >= 2, got {num_samples!r}")


def mean_shift(sigma: torch.Tensor, grad: torch.Tensor, kl_budget: float) -> torch.Tensor:
    """The mean shift of a Gaussian that spends ``eps`` nats on raising a linear ``V``.

    ``delta = sigma * sqrt(2 eps) * u`` with ``u = sigma * grad / ||sigma * grad||`` (norms
    over the last dimension), so ``0.5 * ||delta / sigma||^2 = eps``. Rows where
    ``sigma * grad`` is 0 (a terminal state, whose value is 0 whatever the sample) get no
    shift.

    Args:
        sigma: the member's standard deviations, ``... x d``.
        grad: ``grad V`` at the mean, same shape.
        kl_budget: ``eps``, nats, ``>= 0``.

    Returns:
        ``delta``, same shape.
    """
    scaled = sigma * grad
    norm = scaled.norm(dim=-1, keepdim=True)
    unit = torch.where(norm > 0, scaled / norm.clamp_min(torch.finfo(norm.dtype).tiny), 0.0)
    return sigma * math.sqrt(2.0 * kl_budget) * unit


def gaussian_shift_kl(delta: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu + delta, sigma^2) || N(mu, sigma^2)) = 0.5 * ||delta / sigma||^2`` per row."""
    return 0.5 * (delta / sigma).pow(2).sum(-1)


def mean_shift_temperature(
    sigma: torch.Tensor, grad: torch.Tensor, kl_budget: float, gamma: float
) -> torch.Tensor:
    """The ``eta`` the mean shift implies: ``gamma * ||sigma * grad|| / sqrt(2 eps)``.

    For a linear ``V`` the tilt ``q_mle * exp(gamma V / eta)`` moves a Gaussian's mean by
    ``sigma^2 * gamma * grad / eta``; equating its size with :func:`mean_shift`'s gives
    this. ``inf`` where there is no shift (``eps = 0`` or ``sigma * grad = 0``).

    Returns:
        ``eta`` per row (the last dimension reduced).
    """
    norm = (sigma * grad).norm(dim=-1)
    if kl_budget == 0:
        return torch.full_like(norm, math.inf)
    eta = gamma * norm / math.sqrt(2.0 * kl_budget)
    return torch.where(norm > 0, eta, math.inf)


def tilt_kl(log_weights: torch.Tensor) -> torch.Tensor:
    """``sum_k w_k log(K w_k)``: the KL of weights to uniform over the last dimension.

    Args:
        log_weights: ``log w``, normalized over the last dimension (``-inf`` for 0).

    Returns:
        The KL per row, in nats, in ``[0, log K]``.
    """
    k = log_weights.shape[-1]
    w = log_weights.exp()
    terms = torch.where(w > 0, w * (log_weights + math.log(k)), 0.0)
    return terms.sum(-1)


def solve_temperature(
    scaled_values: torch.Tensor, kl_budget: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``eta`` such that ``w ∝ exp(gamma V / eta)`` has ``sum w log(K w) = eps``, per row.

    A bisection on ``log eta`` (the KL falls as ``eta`` grows), row by row at once.
    Special cases: a row whose values are all equal, or ``eps = 0``, keeps uniform
    weights (``eta = inf``, KL 0); ``eps`` at or above the largest KL reachable,
    ``log(K / m)`` with ``m`` the number of draws tied at the maximum, puts uniform
    weight on those ``m`` (``eta = 0``, KL ``log(K / m)``: the budget is capped).

    Args:
        scaled_values: ``gamma V`` of ``K`` draws per row, ``B x K``.
        kl_budget: ``eps``, nats, ``>= 0``.

    Returns:
        ``eta`` (``B``), the weights (``B x K``) and their KL to uniform (``B``), float64.
    """
    z = scaled_values.double()
    k = z.shape[-1]
    top = z.max(-1, keepdim=True).values
    spread = (top - z.min(-1, keepdim=True).values).squeeze(-1)
    at_top = z == top
    max_kl = math.log(k) - at_top.sum(-1).double().log()

    def log_weights(log_eta: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax((z - top) / log_eta.exp().unsqueeze(-1), dim=-1)

    flat = (spread <= 0) | (kl_budget <= 0)
    capped = ~flat & (kl_budget >= max_kl)
    safe_spread = torch.where(spread > 0, spread, 1.0)
    lo = safe_spread.log() + _LOG_ETA_RANGE[0]  # small eta: KL near its maximum
    hi = safe_spread.log() + _LOG_ETA_RANGE[1]  # large eta: KL near 0
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        too_tilted = tilt_kl(log_weights(mid)) > kl_budget
        lo = torch.where(too_tilted, mid, lo)
        hi = torch.where(too_tilted, hi, mid)
    log_eta = 0.5 * (lo + hi)
    logw = log_weights(log_eta)
    uniform = torch.full_like(z, -math.log(k))
    on_top = torch.where(at_top, 0.0, -math.inf) - at_top.sum(-1, keepdim=True).double().log()
    logw = torch.where(flat.unsqueeze(-1), uniform, logw)
    logw = torch.where(capped.unsqueeze(-1), on_top, logw)
    eta = torch.where(flat, math.inf, torch.where(capped, 0.0, log_eta.exp()))
    return eta, logw.exp(), tilt_kl(logw)


def value_gain(weights: torch.Tensor, scaled_values: torch.Tensor) -> torch.Tensor:
    """``E_q[gamma V] - E_q_mle[gamma V]`` over ``K`` draws: ``sum w z - mean z`` per row."""
    z = scaled_values.to(weights.dtype)
    return (weights * z).sum(-1) - z.mean(-1)
