"""The model step with a budget, at rollout time (``docs/algorithm.md``, "Budgeted optimism").

:class:`BudgetedOptimism` tilts each sample of the model's Gaussian member toward high
value, ``q ∝ q_mle * exp(gamma V / eta)``, spending ``kl_budget`` nats of
``KL(q || q_mle)`` per transition. ``q_mle`` is the ensemble as mbrl trains it (NLL
only); ``V`` is SAC's soft value from its target critic, 0 at next states the task's
termination function marks terminal. The math is in :mod:`mbrl_bound_plugin.kl_budget`;
this class draws the samples, calls the value function and keeps the diagnostics.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from mbrl_bound_plugin import kl_budget as budget

ValueFn = Callable[[torch.Tensor], torch.Tensor]
TermFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NextObsFn = Callable[[torch.Tensor], torch.Tensor]
# the diagnostics, as logged in results.csv (means over the rollouts' model steps)
OPTIMISM_STATS = ("optimism_kl", "optimism_eta", "optimism_value_gain")
# rows per call of the value function when no gradient is needed
_VALUE_CHUNK = 65536
_SUMS = ("kl", "value_gain", "gain_rows", "eta", "eta_rows", "rows")
# rows of each mean_shift model step whose value gain is measured (the first ones: rollout
# rows start from replay rows drawn at random); the gain needs two more passes of V
_GAIN_ROWS = 8192


def _cuda(device: torch.device) -> list[torch.device]:
    """The devices whose generators :func:`torch.random.fork_rng` must fork besides the CPU's."""
    return [device] if device.type == "cuda" else []


class BudgetedOptimism:
    """Draws a model's next-state sample from its value-tilted Gaussian, within a KL budget.

    Args:
        method: ``"none"`` (mbrl's sample), ``"mean_shift"`` (the member's mean moves by
            ``sigma * sqrt(2 eps) * u``, ``u ∝ sigma * grad V`` with ``V`` linearized at the
            mean: ``KL = eps`` exactly) or ``"resample"`` (``num_samples`` draws from the
            member, one kept with probability ``w ∝ exp(gamma V / eta)``, ``eta`` such that
            the weights' KL to uniform is ``eps``).
        kl_budget: ``eps``, nats per transition; ``0`` is no tilt (mbrl's sample, the same
            random draws).
        num_samples: ``K``, draws per transition for ``"resample"``.

    Raises:
        ValueError: saying what to change (see ``kl_budget.check_optimism_settings``).
    """

    def __init__(self, method: str = "none", kl_budget: float = 0.0, num_samples: int = 16):
        budget.check_optimism_settings(method, kl_budget, num_samples)
        self.method = method
        self.kl_budget = float(kl_budget)
        self.num_samples = int(num_samples)
        self._value: tuple[ValueFn, float, TermFn | None] | None = None
        self._recording = True
        self._sums = dict.fromkeys(_SUMS, 0.0)

    @property
    def tilts(self) -> bool:
        """Whether the settings tilt the model's samples (a method, and ``eps > 0``)."""
        return self.method != "none" and self.kl_budget > 0

    @property
    def active(self) -> bool:
        """Whether samples are tilted now: :attr:`tilts`, and a value function is set."""
        return self.tilts and self._value is not None

    def set_value(self, value_fn: ValueFn, gamma: float, termination_fn: TermFn | None) -> None:
        """Sets ``V`` (e.g. ``BoundSACAgent.target_value``), the discount and the task's
        ``termination_fn(act, next_obs)`` (``V = 0`` where it is true; ``None``: never)."""
        if not 0.0 < gamma < 1.0:
            raise ValueError(f"gamma must be in (0, 1), got {gamma}")
        self._value = (value_fn, float(gamma), termination_fn)

    def sample(
        self,
        mean: torch.Tensor,
        logvar: torch.Tensor,
        act: torch.Tensor,
        to_next_obs: NextObsFn,
        obs_dims: int,
        rng: torch.Generator | None = None,
    ) -> torch.Tensor:
        """A tilted sample of each row's Gaussian, ``B x out``, in the model's output space.

        Args:
            mean: the member's mean for each row, ``B x out``.
            logvar: its log-variance, same shape.
            act: the rows' actions, ``B x act_dim`` (for the termination function).
            to_next_obs: maps the first ``obs_dims`` outputs (``... x obs_dims``) to next
                observations (adds ``obs`` where the model predicts a change).
            obs_dims: how many leading outputs are the next observation (a learned
                reward, the last output, is drawn but not tilted).
            rng: the generator of the model's draws.

        Returns:
            The sample, next-observation part tilted.
        """
        std = torch.sqrt(logvar.exp())  # (as mbrl's sample_1d: the same draws, bit for bit)
        if self.method == "mean_shift":
            return self._mean_shift(mean, std, act, to_next_obs, obs_dims, rng)
        return self._resample(mean, std, act, to_next_obs, obs_dims, rng)

    def _scaled_value(self, next_obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``gamma * (1 - done) * V(next_obs)`` with the leading dims of ``next_obs``.

        Without gradient, in chunks of :data:`_VALUE_CHUNK` rows (``resample`` evaluates
        ``K`` draws of every rollout row: a whole rollout step at once would hold the
        critic's activations for millions of rows); with gradient, the caller chunks.
        """
        value_fn, gamma, termination_fn = self._value
        flat_obs = next_obs.reshape(-1, next_obs.shape[-1])
        flat_act = act.expand(*next_obs.shape[:-1], act.shape[-1]).reshape(-1, act.shape[-1])
        chunk = len(flat_obs) if torch.is_grad_enabled() else _VALUE_CHUNK
        parts = []
        for start in range(0, len(flat_obs), max(chunk, 1)):
            obs_part = flat_obs[start : start + chunk]
            value = value_fn(obs_part).reshape(len(obs_part))
            if termination_fn is not None:
                with torch.no_grad():
                    done = termination_fn(flat_act[start : start + chunk], obs_part)
                value = value * (1.0 - done.to(value.dtype).reshape(value.shape))
            parts.append(value)
        return gamma * torch.cat(parts).reshape(next_obs.shape[:-1])

    def _mean_shift(self, mean, std, act, to_next_obs, obs_dims, rng) -> torch.Tensor:
        draw = torch.normal(mean, std, generator=rng)  # (mbrl's draw)
        sigma = std[..., :obs_dims]
        with torch.enable_grad():  # (mbrl's ModelEnv steps under no_grad)
            at_mean = mean[..., :obs_dims].detach().requires_grad_(True)
            next_at_mean = to_next_obs(at_mean)
            grad = torch.zeros_like(at_mean)
            for start in range(0, len(at_mean), _VALUE_CHUNK):  # (the critic's graph by parts)
                rows = slice(start, start + _VALUE_CHUNK)
                value = self._scaled_value(next_at_mean[rows], act[rows])
                (part,) = torch.autograd.grad(
                    value.sum(), at_mean, retain_graph=True, allow_unused=True
                )
                if part is not None:
                    grad += part
        delta = budget.mean_shift(sigma, grad, self.kl_budget)
        tilted = torch.cat([draw[..., :obs_dims] + delta, draw[..., obs_dims:]], dim=-1)
        if self._recording:
            _, gamma, _ = self._value
            with torch.no_grad():
                # on the first _GAIN_ROWS rows, the same policy noise at both points
                # (common random numbers), from forks: the diagnostic draws nothing from
                # the generator the rollouts use
                some, part = slice(0, _GAIN_ROWS), act[:_GAIN_ROWS]
                values = []
                for point in (tilted, draw):
                    with torch.random.fork_rng(devices=_cuda(mean.device)):
                        next_obs = to_next_obs(point[..., :obs_dims])[some]
                        values.append(self._scaled_value(next_obs, part))
                gain = values[0] - values[1]
            eta = budget.mean_shift_temperature(sigma, grad / gamma, self.kl_budget, gamma)
            self._record(budget.gaussian_shift_kl(delta, sigma), gain, eta)
        return tilted

    def _resample(self, mean, std, act, to_next_obs, obs_dims, rng) -> torch.Tensor:
        shape = (self.num_samples, *mean.shape)
        noise = torch.randn(shape, generator=rng, device=mean.device, dtype=mean.dtype)
        draws = mean + std * noise  # K x B x out, from q_mle
        with torch.no_grad():
            scaled = self._scaled_value(to_next_obs(draws[..., :obs_dims]), act).T  # B x K
        eta, weights, kl = budget.solve_temperature(scaled, self.kl_budget)
        kept = torch.multinomial(weights.float(), 1, generator=rng).squeeze(-1)
        if self._recording:
            self._record(kl, budget.value_gain(weights, scaled), eta)
        return draws[kept, torch.arange(mean.shape[0], device=mean.device)]

    def _record(self, kl: torch.Tensor, gain: torch.Tensor, eta: torch.Tensor) -> None:
        finite = torch.isfinite(eta)
        self._sums["kl"] += kl.sum().item()
        self._sums["value_gain"] += gain.sum().item()
        self._sums["gain_rows"] += gain.numel()
        self._sums["eta"] += eta[finite].sum().item()
        self._sums["eta_rows"] += finite.sum().item()
        self._sums["rows"] += kl.numel()

    @contextlib.contextmanager
    def unrecorded(self) -> Iterator[None]:
        """Inside, tilted samples are not counted in :meth:`pop_stats` (e.g. the
        discriminator's model samples, which are not the rollouts')."""
        saved, self._recording = self._recording, False
        try:
            yield
        finally:
            self._recording = saved

    def pop_stats(self) -> dict[str, float]:
        """Means over the samples since the last call, then reset: ``optimism_kl`` (the
        realized ``KL(q || q_mle)``, nats), ``optimism_eta`` (mean of the finite ``eta``;
        for ``mean_shift`` the one the shift implies for a linear ``V``) and
        ``optimism_value_gain`` (``E_q[gamma V] - E_q_mle[gamma V]``; for ``mean_shift``
        on the first :data:`_GAIN_ROWS` rows of each model step). NaN without samples."""
        sums, rows = self._sums, self._sums["rows"]
        stats = {
            "optimism_kl": sums["kl"] / rows if rows else math.nan,
            "optimism_eta": sums["eta"] / sums["eta_rows"] if sums["eta_rows"] else math.nan,
            "optimism_value_gain": (
                sums["value_gain"] / sums["gain_rows"] if sums["gain_rows"] else math.nan
            ),
        }
        self._sums = dict.fromkeys(self._sums, 0.0)
        return stats

    def state_dict(self) -> dict[str, Any]:
        """The pending diagnostics' sums (a checkpoint mid-epoch keeps them)."""
        return {"sums": dict(self._sums)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Loads :meth:`state_dict` (one saved before ``gain_rows`` counted the gain
        on all its rows)."""
        sums = dict(state["sums"])
        sums.setdefault("gain_rows", sums["rows"])
        self._sums = dict.fromkeys(_SUMS, 0.0) | sums
