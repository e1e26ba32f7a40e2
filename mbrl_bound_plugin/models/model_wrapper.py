"""mbrl's 1-D transition-reward model with the bound's model step (deep algorithm, step 2).

The model loss becomes ``NLL + beta * -(g(logit C(s,a,ŝ')) + gamma * (1 - done(ŝ')) *
V(ŝ'))`` with ``ŝ'`` drawn from the ensemble by reparameterization, ``g`` the policy's
own ratio term, and ``C`` and ``V`` frozen, so gradients reach the model through ``ŝ'``
only (``docs/algorithm.md``, the model step). ``V(ŝ')`` can be clamped to the range of ``V``
at the batch's real next states (``clamp_value``). The bound term is reduced over ensemble
members as mbrl reduces the NLL, so ``beta`` weighs it against each member's NLL
whatever the ensemble size, and with ``beta > 0`` validation scores the same objective.
With ``beta = 0`` (or before the critics are set) training is mbrl's own, unchanged.
:meth:`BoundTransitionRewardModel.sample` can instead tilt the rollouts' samples within
a KL budget (``models/optimism.py``, "Budgeted optimism").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import mbrl.models
import mbrl.models.util as model_util
import mbrl.types
import mbrl.util.math
import torch
from torch import nn

from mbrl_bound_plugin import objective
from mbrl_bound_plugin.models.optimism import BudgetedOptimism

DiscriminatorFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ValueFn = Callable[[torch.Tensor], torch.Tensor]
RatioFn = Callable[[torch.Tensor], torch.Tensor]
TermFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
BOUND_STATS = ("model_nll", "bound_term", "bound_logit", "bound_value", "bound_value_clamped")


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

    ``beta`` weighs the bound term, in nats per transition, against each member's NLL
    (mbrl's Gaussian NLL averaged over batch and output dimensions): the term is averaged
    over each member's samples, then summed over members for mbrl's ``GaussianMLP``
    ensemble (which sums its members' NLLs) or averaged for ``BasicEnsemble`` (which
    averages them), so the same ``beta`` means the same for any ensemble size.

    With ``beta > 0``, :meth:`eval_score` (what mbrl's ``ModelTrainer`` uses to keep the
    best weights, stop early and pick elites) is the model's own objective per member,
    NLL plus ``beta`` times the bound term, instead of mbrl's squared error, which would
    pull the model back to the likelihood fit.

    The NLL and the bound term come from one forward pass of the ensemble (for mbrl's
    Gaussian ``GaussianMLP``; other models use their own ``loss`` and a second pass).

    Args:
        model: the wrapped mbrl model (e.g. a ``GaussianMLP`` ensemble).
        beta: weight of the bound term in the model loss; ``0`` gives mbrl's training
            exactly. Must be ``>= 0``.
        bound_batch_size: how many rows of each member's batch get the bound term (the
            first ones; mbrl's batches are shuffled, so a random subset): an unbiased
            estimate of the term's mean at a fraction of its cost (the critics' forward
            and backward passes). ``None``: every row. Must be ``>= 1``.
        clamp_value: clamp ``V(ŝ')`` to the range of ``V`` over the same rows' real,
            non-terminal next states (``objective.value_bounds``), so that the model gains
            nothing by moving ``ŝ'`` to where the critic only extrapolates. Off by
            default: where the model step ran away it did not stop it
            (``docs/maze.md``).
        **kwargs: passed to ``OneDTransitionRewardModel`` (``target_is_delta``,
            ``normalize``, ``normalize_double_precision``, ``learned_rewards``,
            ``obs_process_fn``, ``no_delta_list``, ``num_elites``).
    """

    def __init__(
        self,
        model: mbrl.models.Model,
        beta: float = 0.0,
        bound_batch_size: int | None = None,
        clamp_value: bool = False,
        **kwargs: Any,
    ):
        objective.check_model_settings(beta, bound_batch_size, clamp_value)
        super().__init__(model, **kwargs)
        self.beta = float(beta)
        self.bound_batch_size = None if bound_batch_size is None else int(bound_batch_size)
        self.clamp_value = bool(clamp_value)
        # critics in a tuple, so that an nn.Module critic is not registered as a
        # submodule (its parameters must stay out of the model's optimizer)
        self._critics: tuple[DiscriminatorFn, ValueFn, RatioFn, TermFn | None] | None = None
        self._gamma = 0.0
        self._frozen: tuple[nn.Module, ...] = ()
        self._stat_sums: dict[str, float] = {}  # per key: its sum and count since the last pop
        self._stat_counts: dict[str, int] = {}
        self.optimism: BudgetedOptimism | None = None

    def set_bound_critics(
        self,
        discriminator: DiscriminatorFn,
        value_fn: ValueFn,
        gamma: float,
        frozen: Sequence[nn.Module] = (),
        ratio_fn: RatioFn | None = None,
        termination_fn: TermFn | None = None,
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
            ratio_fn: ``g``, the transform of the logit the policy also sees (e.g.
                ``BoundSACAgent.ratio_term``); ``None``: the raw logit.
            termination_fn: mbrl's ``term_fn(act, next_obs)``; ``V`` counts 0 at the
                samples it marks terminal. ``None``: no state is terminal.

        Raises:
            ValueError: if ``gamma`` is outside ``(0, 1)``.
        """
        if not 0.0 < gamma < 1.0:
            raise ValueError(f"gamma must be in (0, 1), got {gamma}")
        self._critics = (discriminator, value_fn, ratio_fn or (lambda x: x), termination_fn)
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
        return self._next_obs(*self._members_forward(model_in), obs)

    def _next_obs(
        self, mean: torch.Tensor, logvar: torch.Tensor | None, obs: torch.Tensor
    ) -> torch.Tensor:
        if self.learned_rewards:  # the reward head keeps its plain NLL
            mean = mean[..., :-1]
            logvar = None if logvar is None else logvar[..., :-1]
        delta = mean
        if logvar is not None:  # reparameterization: mu + sigma * eps
            delta = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        return self._to_next_obs(delta, obs)

    def _to_next_obs(self, pred: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """The model's next-observation outputs ``... x obs_dim`` as next observations:
        ``obs + pred`` when ``target_is_delta``, except the ``no_delta_list`` dimensions."""
        if not self.target_is_delta:
            return pred
        absolute = torch.zeros(pred.shape[-1], dtype=torch.bool, device=pred.device)
        absolute[list(self.no_delta_list)] = True
        return torch.where(absolute, pred, obs + pred)

    def set_optimism(self, tilt: BudgetedOptimism | None) -> None:
        """Tilts :meth:`sample`'s draws within a KL budget (``None``: mbrl's draws).

        The budgeted optimism acts at rollout time only; the ensemble's training is
        untouched by it.
        """
        self.optimism = tilt

    def sample(
        self,
        act: torch.Tensor,
        model_state: dict[str, torch.Tensor],
        deterministic: bool = False,
        rng: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, None, dict[str, torch.Tensor]]:
        """``OneDTransitionRewardModel.sample``, its draw tilted by :meth:`set_optimism`'s.

        Without an active tilt (none set, ``kl_budget = 0``, no value function yet) or
        for a ``deterministic`` sample, this is mbrl's ``sample`` itself. Otherwise the
        chosen member's mean and log-variance for each row come from the same call mbrl's
        ``sample_1d`` makes (the ensemble's propagation), and
        :meth:`BudgetedOptimism.sample` draws from the tilted Gaussian.
        """
        tilt = self.optimism
        if deterministic or tilt is None or not tilt.active:
            return super().sample(act, model_state, deterministic=deterministic, rng=rng)
        obs = model_util.to_tensor(model_state["obs"]).to(self.device)
        model_in = self._get_model_input(model_state["obs"], act)
        mean, logvar = self.model.forward(
            model_in, rng=rng, propagation_indices=model_state.get("propagation_indices")
        )
        obs_dims = mean.shape[-1] - (1 if self.learned_rewards else 0)
        preds = tilt.sample(
            mean, logvar, act, lambda pred: self._to_next_obs(pred, obs), obs_dims, rng
        )
        next_obs = self._to_next_obs(preds[..., :obs_dims], obs)
        rewards = preds[..., obs_dims:] if self.learned_rewards else None
        return next_obs, rewards, None, {**model_state, "obs": next_obs}

    def _members_forward(self, model_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mean and log-variance of every member, ``E x B x out``, each member on its own rows.

        ``model_in`` is ``E x B x in``, or ``B x in`` / ``1 x B x in`` (broadcast to every
        member). mbrl's ``GaussianMLP`` ensemble does this in one call; its
        ``BasicEnsemble`` holds separate models, called one by one.
        """
        if model_in.ndim == 2:  # add the ensemble dimension, as mbrl's loss does
            model_in = model_in.unsqueeze(0)
        if not isinstance(self.model, mbrl.models.BasicEnsemble):
            return self.model.forward(model_in, use_propagation=False)
        rows = model_in.expand(len(self.model), *model_in.shape[1:])
        outputs = [member.forward(x) for member, x in zip(self.model.members, rows, strict=True)]
        mean = torch.stack([m for m, _ in outputs])
        logvar = None if outputs[0][1] is None else torch.stack([v for _, v in outputs])
        return mean, logvar

    def _reduce_members(self, per_sample: torch.Tensor) -> torch.Tensor:
        """Per-sample ``E x B`` values to one scalar, reduced over members as mbrl's NLL."""
        per_member = per_sample.reshape(per_sample.shape[0], -1).mean(dim=1)
        if isinstance(self.model, mbrl.models.BasicEnsemble):
            return per_member.mean()
        return per_member.sum()

    def _nll(
        self,
        model_in: torch.Tensor,
        target: torch.Tensor,
        mean: torch.Tensor,
        logvar: torch.Tensor | None,
    ) -> torch.Tensor:
        """The model's own training loss, from the forward pass already made when possible.

        For mbrl's Gaussian ``GaussianMLP`` this is its ``loss`` (the ensemble's summed
        Gaussian NLL by ``mbrl.util.math.gaussian_nll``, plus its small term on the
        log-variance bounds) computed from ``mean`` and ``logvar``; other models compute
        their ``loss`` themselves.
        """
        model = self.model
        if not isinstance(model, mbrl.models.GaussianMLP) or logvar is None:
            return model.loss(model_in, target)[0]
        target = target if target.ndim == 3 else target.unsqueeze(0)
        target = target.expand_as(mean)  # (a B x out target: the same rows for every member)
        nll = mbrl.util.math.gaussian_nll(mean, logvar, target, reduce=False).mean((1, 2)).sum()
        return nll + 0.01 * (model.max_logvar.sum() - model.min_logvar.sum())

    def _real_next(
        self, batch: mbrl.types.TransitionBatch
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The batch's real next observations and terminal flags (``... x 1``), if clamping."""
        if not self.clamp_value:
            return None
        next_obs = model_util.to_tensor(batch.next_obs).to(self.device).float()
        dones = model_util.to_tensor(batch.terminateds).to(self.device).bool().unsqueeze(-1)
        return next_obs, dones

    def _bound_rows(self, *tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
        """The first ``bound_batch_size`` rows of each member's ``E x B x ...`` tensors."""
        rows = self.bound_batch_size
        return [t if t is None or rows is None else t[..., :rows, :] for t in tensors]

    def _bound_terms(
        self,
        mean: torch.Tensor,
        logvar: torch.Tensor | None,
        obs: torch.Tensor,
        act: torch.Tensor,
        real_next: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample ``g(logit)``, ``gamma (1 - done) V``, their negated sum, and clamped-or-not.

        Each ``E x b``; ``b`` is the batch size, or ``bound_batch_size`` when that is
        smaller. ``real_next`` (the same rows' real next observations and terminal flags)
        gives the range ``V(ŝ')`` is clamped to; ``None``: no clamp.
        """
        mean, logvar, obs, act = self._bound_rows(mean, logvar, obs, act)
        discriminator, value_fn, ratio_fn, termination_fn = self._critics
        bounds = None
        if real_next is not None:
            real_obs, real_done = self._bound_rows(*real_next)
            with torch.no_grad():
                real_value = _match_trailing_one(value_fn(real_obs), real_obs.shape[:-1])
            bounds = objective.value_bounds(real_value, real_done.squeeze(-1))
        next_obs = self._next_obs(mean, logvar, obs)  # ŝ' ~ q, reparameterized
        obs_b = obs.expand_as(next_obs)
        act_b = act.expand(*next_obs.shape[:-1], act.shape[-1])
        logit = _match_trailing_one(discriminator(obs_b, act_b, next_obs), next_obs.shape[:-1])
        ratio = ratio_fn(logit)
        value = _match_trailing_one(value_fn(next_obs), logit.shape)
        done = None
        if termination_fn is not None:
            with torch.no_grad():
                flat = termination_fn(
                    act_b.reshape(-1, act_b.shape[-1]), next_obs.reshape(-1, next_obs.shape[-1])
                )
            done = flat.reshape(logit.shape)
        term = objective.model_bound_term(ratio, value, self._gamma, done, bounds)
        clamped = torch.zeros_like(term, dtype=torch.bool)
        if bounds is not None:  # (a terminal sample's value counts 0 anyway: not clamped)
            clamped = (value.detach() < bounds[0]) | (value.detach() > bounds[1])
            if done is not None:
                clamped &= ~done.bool()
        return ratio, -term - ratio, term, clamped

    def update(
        self,
        batch: mbrl.types.TransitionBatch,
        optimizer: torch.optim.Optimizer,
        target: torch.Tensor | None = None,
    ) -> tuple[float, dict[str, Any]]:
        """One training step on ``NLL + beta * -(g(logit C) + gamma (1 - done) V)(ŝ')``.

        With ``beta == 0`` or no critics set, this is ``OneDTransitionRewardModel.update``
        unchanged (bit-for-bit mbrl's training).

        Args:
            batch: transitions to train on (from ``ModelTrainer``'s iterator).
            optimizer: the model's optimizer.
            target: must be ``None`` (targets come from ``batch``), as in mbrl.

        Returns:
            The loss value and a metadata dict (with ``model_nll``, ``bound_term``,
            ``bound_logit``, ``bound_value``, ``bound_value_clamped`` and ``grad_norm``
            when the bound term is used; mbrl's metadata otherwise).
        """
        if self.beta == 0.0 or self._critics is None:
            loss, meta = super().update(batch, optimizer, target)
            self._record(model_nll=float(loss))  # no bound term computed: its columns stay empty
            return loss, meta

        assert target is None
        model_in, target = self._process_batch(batch)
        self.train()
        optimizer.zero_grad()
        mean, logvar = self._members_forward(model_in)  # one pass for both terms
        nll = self._nll(model_in, target, mean, logvar)  # mbrl's usual Gaussian NLL
        obs = model_util.to_tensor(batch.obs).to(self.device).float()
        act = model_util.to_tensor(batch.act).to(self.device).float()
        with _frozen(self._frozen):
            ratio, value, term, clamped = self._bound_terms(
                mean, logvar, obs, act, self._real_next(batch)
            )
            bound_term = self._reduce_members(term)
            # model step: NLL + beta * -(g(logit C) + gamma (1 - done) V)
            loss = nll + self.beta * bound_term
            loss.backward()
        meta = {}
        with torch.no_grad():
            grad_norm = 0.0
            for p in self.parameters():
                if p.grad is not None:
                    grad_norm += p.grad.norm(2).item() ** 2
        optimizer.step()
        stats = {
            "model_nll": nll.item(),
            "bound_term": bound_term.item(),
            "bound_logit": self._reduce_members(ratio).item(),
            "bound_value": self._reduce_members(value).item(),
            "bound_value_clamped": clamped.float().mean().item() if self.clamp_value else 0.0,
        }
        self._record(**stats)
        meta.update(grad_norm=grad_norm, **stats)
        return loss.item(), meta

    def eval_score(
        self, batch: mbrl.types.TransitionBatch, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Validation score per member and transition, ``E x B x 1`` (lower is better).

        ``beta == 0``: mbrl's own (squared error). ``beta > 0``: the model's objective,
        the Gaussian NLL (``mbrl.util.math.gaussian_nll``, averaged over output
        dimensions) plus ``beta`` times the bound term once the critics are set.
        """
        if self.beta == 0.0:
            return super().eval_score(batch, target)
        assert target is None
        with torch.no_grad():
            model_in, target = self._process_batch(batch)
            mean, logvar = self._members_forward(model_in)
            target = target.expand_as(mean)
            if logvar is None:
                score = (mean - target).pow(2).mean(-1)
            else:
                score = mbrl.util.math.gaussian_nll(mean, logvar, target, reduce=False).mean(-1)
            if self._critics is not None:
                obs = model_util.to_tensor(batch.obs).to(self.device).float()
                act = model_util.to_tensor(batch.act).to(self.device).float()
                term = self._bound_terms(mean, logvar, obs, act, self._real_next(batch))[2]
                if term.shape[-1] != score.shape[-1]:  # a subsample: its mean, for every row
                    term = term.mean(-1, keepdim=True)
                score = score + self.beta * term
        return score.unsqueeze(-1), {}  # (mbrl's trainer expects E x B x out)

    def _record(self, **stats: float) -> None:
        for key, val in stats.items():
            self._stat_sums[key] = self._stat_sums.get(key, 0.0) + val
            self._stat_counts[key] = self._stat_counts.get(key, 0) + 1

    def pop_bound_stats(self) -> dict[str, float]:
        """Means of :data:`BOUND_STATS` over the updates since the last pop.

        Resets the sums. With ``beta == 0`` or no critics set (no bound term computed) only
        ``model_nll``, mbrl's loss, is recorded (``model_train.csv`` leaves the bound's
        columns empty). ``bound_logit`` is the mean ratio term
        ``g(logit C)`` the model maximizes, ``bound_value`` the mean ``gamma (1 - done) V``;
        ``bound_term`` is minus their sum (each reduced over members as the NLL), and
        ``bound_value_clamped`` the fraction of samples ``ŝ'`` whose ``V`` was clamped
        (terminal samples, whose value counts 0 anyway, are not counted as clamped).

        Returns:
            The means of the stats recorded since the last pop (``{}`` when no update ran).
        """
        stats = {k: v / self._stat_counts[k] for k, v in self._stat_sums.items()}
        self._stat_sums, self._stat_counts = {}, {}
        return stats
