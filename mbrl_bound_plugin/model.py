"""mbrl's 1-D transition-reward model with the bound's model step (deep algorithm, step 2).

The model loss becomes ``NLL + beta * -(logit C(s,a,ŝ') + gamma * V(ŝ'))`` with ``ŝ'``
drawn from the ensemble by reparameterization and ``C`` and ``V`` frozen, so gradients
reach the model through ``ŝ'`` only (``docs/algorithm.md``, the model step). With
``beta = 0`` (or before the critics are set) :meth:`update` is mbrl's own, unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import mbrl.models
import mbrl.models.util as model_util
import mbrl.types
import numpy as np
import torch
from torch import nn

from mbrl_bound_plugin import bound

DiscriminatorFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ValueFn = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def _frozen(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Sets ``requires_grad=False`` on every parameter of ``modules``; restores on exit."""
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def _match_trailing_one(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Drops a trailing singleton dim (e.g. a critic's ``... x 1`` output) to match ``shape``."""
    if x.shape != shape and x.ndim == len(shape) + 1 and x.shape[-1] == 1:
        return x.squeeze(-1)
    return x


class BoundTransitionRewardModel(mbrl.models.OneDTransitionRewardModel):
    """``OneDTransitionRewardModel`` whose training step adds the bound's model term.

    Args:
        model: the wrapped mbrl model (e.g. a ``GaussianMLP`` ensemble).
        beta: weight of the bound term in the model loss; ``0`` gives mbrl's training
            exactly. Must be ``>= 0``.
        **kwargs: passed to ``OneDTransitionRewardModel`` (``target_is_delta``,
            ``normalize``, ``normalize_double_precision``, ``learned_rewards``,
            ``obs_process_fn``, ``no_delta_list``, ``num_elites``).
    """

    def __init__(self, model: mbrl.models.Model, beta: float = 0.0, **kwargs: Any):
        if beta < 0:
            raise ValueError(f"beta must be >= 0 (0 is MBPO's model training), got {beta}")
        super().__init__(model, **kwargs)
        self.beta = float(beta)
        # (discriminator, value_fn) in a tuple, so that an nn.Module critic is not
        # registered as a submodule (its parameters must stay out of the model's optimizer)
        self._critics: tuple[DiscriminatorFn, ValueFn] | None = None
        self._gamma = 0.0
        self._frozen: tuple[nn.Module, ...] = ()
        self._nll_history: list[float] = []
        self._bound_history: list[float] = []

    def set_bound_critics(
        self,
        discriminator: DiscriminatorFn,
        value_fn: ValueFn,
        gamma: float,
        frozen: Sequence[nn.Module] = (),
    ) -> None:
        """Sets the critics of the bound term; call again whenever they change.

        Args:
            discriminator: ``C(obs, act, next_obs)`` returning logits (estimates of
                ``log p/q``) with the inputs' leading shape (a trailing ``1`` is dropped).
            value_fn: ``V(next_obs)`` returning values with the input's leading shape
                (a trailing ``1`` is dropped), e.g. SAC's soft value.
            gamma: discount factor, in ``(0, 1)``.
            frozen: modules whose parameters get no gradient from the bound term (the
                discriminator and the SAC networks behind ``value_fn``). ``discriminator``
                and ``value_fn`` are added when they are themselves ``nn.Module``.

        Raises:
            ValueError: if ``gamma`` is outside ``(0, 1)``.
        """
        if not 0.0 < gamma < 1.0:
            raise ValueError(f"gamma must be in (0, 1), got {gamma}")
        self._critics = (discriminator, value_fn)
        self._gamma = float(gamma)
        modules = list(frozen)
        for fn in (discriminator, value_fn):
            if isinstance(fn, nn.Module) and all(fn is not m for m in modules):
                modules.append(fn)
        self._frozen = tuple(modules)

    def sample_next_obs(self, batch: mbrl.types.TransitionBatch) -> torch.Tensor:
        """Reparameterized next observations ``ŝ' = s + mu + sigma * eps``, one per member.

        The raw-space counterpart of ``OneDTransitionRewardModel.sample`` for all ensemble
        members at once: deltas are added to ``obs`` when ``target_is_delta``, except the
        dimensions in ``no_delta_list``, which the model predicts absolutely.
        Differentiable with respect to the model's parameters.

        Args:
            batch: transitions whose ``obs`` and ``act`` are used; ``obs`` of shape
                ``E x B x obs_dim`` (as from mbrl's ``BootstrapIterator``) or ``B x obs_dim``.

        Returns:
            Next observations of shape ``E x B x obs_dim`` (``E``: ensemble members).
        """
        model_in = self._get_model_input(batch.obs, batch.act).float()
        obs = model_util.to_tensor(batch.obs).to(self.device).float()
        return self._sample_next_obs(model_in, obs)

    def _sample_next_obs(self, model_in: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        if model_in.ndim == 2:  # add the ensemble dimension, as mbrl's loss does
            model_in = model_in.unsqueeze(0)
        mean, logvar = self._members_forward(model_in)
        if self.learned_rewards:  # the reward head keeps its plain NLL
            mean = mean[..., :-1]
            logvar = None if logvar is None else logvar[..., :-1]
        delta = mean
        if logvar is not None:  # reparameterization: mu + sigma * eps
            delta = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        if not self.target_is_delta:
            return delta
        absolute = torch.zeros(delta.shape[-1], dtype=torch.bool, device=delta.device)
        absolute[list(self.no_delta_list)] = True
        return torch.where(absolute, delta, obs + delta)

    def _members_forward(self, model_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mean and log-variance of every member, ``E x B x out``, each member on its own rows.

        ``model_in`` is ``E x B x in`` (or ``1 x B x in``, broadcast to every member).
        mbrl's ``GaussianMLP`` ensemble does this in one call; its ``BasicEnsemble`` holds
        separate models, called one by one.
        """
        if not isinstance(self.model, mbrl.models.BasicEnsemble):
            return self.model.forward(model_in, use_propagation=False)
        rows = model_in.expand(len(self.model), *model_in.shape[1:])
        outputs = [member.forward(x) for member, x in zip(self.model.members, rows, strict=True)]
        mean = torch.stack([m for m, _ in outputs])
        logvar = None if outputs[0][1] is None else torch.stack([v for _, v in outputs])
        return mean, logvar

    def update(
        self,
        batch: mbrl.types.TransitionBatch,
        optimizer: torch.optim.Optimizer,
        target: torch.Tensor | None = None,
    ) -> tuple[float, dict[str, Any]]:
        """One training step on ``NLL + beta * -(logit C(s,a,ŝ') + gamma * V(ŝ'))``.

        With ``beta == 0`` or no critics set, this is ``OneDTransitionRewardModel.update``
        unchanged (bit-for-bit mbrl's training).

        Args:
            batch: transitions to train on (from ``ModelTrainer``'s iterator).
            optimizer: the model's optimizer.
            target: must be ``None`` (targets come from ``batch``), as in mbrl.

        Returns:
            The loss value and a metadata dict (with ``model_nll``, ``bound_term`` and
            ``grad_norm`` when the bound term is used; mbrl's metadata otherwise).
        """
        if self.beta == 0.0 or self._critics is None:
            loss, meta = super().update(batch, optimizer, target)
            self._nll_history.append(float(loss))
            self._bound_history.append(0.0)
            return loss, meta

        assert target is None
        discriminator, value_fn = self._critics
        model_in, target = self._process_batch(batch)
        self.train()
        optimizer.zero_grad()
        nll, meta = self.model.loss(model_in, target)  # mbrl's usual Gaussian NLL
        obs = model_util.to_tensor(batch.obs).to(self.device).float()
        act = model_util.to_tensor(batch.act).to(self.device).float()
        with _frozen(self._frozen):
            next_obs = self._sample_next_obs(model_in, obs)  # ŝ' ~ q, reparameterized
            obs_b = obs.expand_as(next_obs)
            act_b = act.expand(*next_obs.shape[:-1], act.shape[-1])
            logit = discriminator(obs_b, act_b, next_obs)
            logit = _match_trailing_one(logit, next_obs.shape[:-1])
            value = _match_trailing_one(value_fn(next_obs), logit.shape)
            bound_term = bound.model_bound_term(logit, value, self._gamma)
            # model step: NLL + beta * -(logit C + gamma V)
            loss = nll + self.beta * bound_term
            loss.backward()
        meta = dict(meta or {})
        with torch.no_grad():
            grad_norm = 0.0
            for p in self.parameters():
                if p.grad is not None:
                    grad_norm += p.grad.norm(2).item() ** 2
        optimizer.step()
        meta.update(model_nll=nll.item(), bound_term=bound_term.item(), grad_norm=grad_norm)
        self._nll_history.append(meta["model_nll"])
        self._bound_history.append(meta["bound_term"])
        return loss.item(), meta

    def pop_bound_stats(self) -> dict[str, float]:
        """Means of ``model_nll`` and ``bound_term`` over the updates since the last pop.

        Resets the accumulators. With ``beta == 0`` the recorded ``model_nll`` is mbrl's
        loss and ``bound_term`` is ``0.0``.

        Returns:
            ``{"model_nll": ..., "bound_term": ...}``, or ``{}`` when no update ran since
            the last pop.
        """
        if not self._nll_history:
            return {}
        stats = {
            "model_nll": float(np.mean(self._nll_history)),
            "bound_term": float(np.mean(self._bound_history)),
        }
        self._nll_history.clear()
        self._bound_history.clear()
        return stats
