"""The policy player: mbrl's SAC on the bound's augmented reward (``docs/algorithm.md``, step 3)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import mbrl.third_party.pytorch_sac_pranz24 as pytorch_sac_pranz24
import mbrl.types
import mbrl.util
import numpy as np
import torch
from mbrl.planning.sac_wrapper import SACAgent

from mbrl_bound_plugin import objective
from mbrl_bound_plugin.errors import NumericalError
from mbrl_bound_plugin.util import state as run_state
from mbrl_bound_plugin.util.replay_buffer import ScoredReplayBuffer

# weight of the newest batch in the running moments of the model rewards
_SCALE_MOMENTUM = 0.01


class _AugmentedSampler:
    """Looks like a replay buffer to SAC; its batches are :meth:`BoundSACAgent.sac_batch`'s."""

    def __init__(self, buffer: mbrl.util.ReplayBuffer, agent: BoundSACAgent, model_data: bool):
        self.buffer = buffer
        self.agent = agent
        self.model_data = model_data

    def sample(self, batch_size: int) -> mbrl.types.TransitionBatch:
        return self.agent.sac_batch(self.buffer, batch_size, self.model_data)


class BoundSACAgent(SACAgent):
    """mbrl's SAC whose updates see ``rt = f(r̂) + w * c * tanh(logit C(s, a, ŝ') / c)``.

    mode ``bound``: ``f(r) = (1 - gamma) log(r - reward_floor)`` and ``w = 1`` (the bound
    itself). mode ``scaled``: ``f(r) = r`` and ``w = lam`` times the ratio scale (``lam =
    0`` is MBPO's reward). In both, ``w`` ramps in linearly over the first
    ``warmup_epochs`` epochs. :meth:`ratio_term` is the one definition of this term: the
    model step reads it too. Every SAC batch comes from :meth:`sac_batch`, the one path by
    which a batch gets its logit: a batch of model transitions is relabelled with the
    discriminator given to :meth:`set_discriminator`, i.e. the current one: from a
    :class:`~mbrl_bound_plugin.util.replay_buffer.ScoredReplayBuffer` (:meth:`scored_buffer`),
    with the logits it stores (scored by :meth:`logits`; :meth:`set_discriminator` marks
    them stale, to be scored again at the next draw); from another buffer, by calling
    :meth:`logits`. Batches of real transitions get ``f(r)`` only (their log-ratio is
    ``log p/p = 0``).

    Args:
        sac_agent: mbrl's ``pytorch_sac_pranz24.SAC`` (``cfg.algorithm.agent``).
        mode: ``"scaled"`` or ``"bound"``.
        lam: weight of the log-ratio in ``scaled`` mode (ignored in ``bound``).
        clip: the bound ``c`` on the log-ratio.
        reward_floor: a number below every reward of the task (``bound`` mode only).
        gamma: the discount (SAC's ``gamma``).
        scale: ``scaled`` mode: ``"none"``, or the log-ratio in reward units: times a
            running standard deviation (``"reward_std"``) or root mean square
            (``"reward_rms"``) of the model rewards SAC trains on.
        warmup_epochs: epochs over which the ratio term's weight rises from 0 to its full
            value (``0``: full from the start).
        policy_ratio: whether SAC's reward has the ratio term. ``False`` is an ablation:
            the model step still climbs :meth:`ratio_term`, SAC trains on ``f(r)`` only.
        ratio_centering: subtract each SAC batch's mean ratio term from its model
            transitions' rewards (``objective.center_ratio``): a saturated or offset
            log-ratio then costs nothing per step, so it cannot make ending an episode
            pay. The model step's ratio term is not centered (a constant has no
            gradient there anyway).
    """

    def __init__(
        self,
        sac_agent: pytorch_sac_pranz24.SAC,
        mode: str = "scaled",
        lam: float = 0.1,
        clip: float = 10.0,
        reward_floor: float | None = None,
        gamma: float = 0.99,
        scale: str = "none",
        warmup_epochs: int = 0,
        policy_ratio: bool = True,
        ratio_centering: bool = True,
    ):
        super().__init__(sac_agent)
        objective.check_reward_settings(mode, gamma, lam, clip, reward_floor, scale, warmup_epochs)
        self.mode = mode
        self.lam = lam
        self.clip = clip
        self.reward_floor = reward_floor
        self.gamma = gamma
        self.scale = scale
        self.warmup_epochs = int(warmup_epochs)
        if not isinstance(policy_ratio, bool):
            raise ValueError(f"policy_ratio must be true or false, got {policy_ratio!r}")
        self.policy_ratio = policy_ratio
        if not isinstance(ratio_centering, bool):
            raise ValueError(f"ratio_centering must be true or false, got {ratio_centering!r}")
        self.ratio_centering = ratio_centering
        self.epochs_done = 0
        self.discriminator: Callable[..., torch.Tensor] | None = None
        self._reward_sum = 0.0
        self._reward_count = 0
        # log-sum-exp and count of the logits of SAC's model rows (rollout calibration)
        self._rollout_logits: tuple[float, int] = (-math.inf, 0)
        # running first and second moments of the model rewards (None: none seen yet)
        self._reward_moments: tuple[float, float] | None = None
        # model batches drawn and scored ahead: (buffer, [(batch, logit), ...]) or None
        self._ahead: tuple[mbrl.util.ReplayBuffer, list] | None = None

    @property
    def uses_ratio(self) -> bool:
        """Whether SAC's reward has a ratio term at all (``policy_ratio``, and mode
        ``bound`` or ``lam != 0``)."""
        return self.policy_ratio and objective.ratio_weight(self.mode, self.lam) != 0.0

    @property
    def changes_reward(self) -> bool:
        """Whether ``rt`` differs from ``r``; if not, SAC trains on the rewards as stored
        (mode ``scaled`` with ``lam = 0``: MBPO's reward, no discriminator call)."""
        return self.mode != "scaled" or self.uses_ratio

    def count_reward(self, rewards: np.ndarray, model_data: bool = True) -> None:
        """Adds SAC rewards left as they are to the mean :meth:`pop_bound_reward` reports
        (and model rewards to the ratio scale's moments, which the model step's
        :meth:`ratio_term` uses even when SAC's reward has no ratio term)."""
        if model_data and self.scale != "none":
            self._track_reward_moments(torch.as_tensor(rewards, dtype=torch.float32))
        self._reward_sum += float(np.sum(rewards))
        self._reward_count += int(np.size(rewards))

    def set_epoch(self, epochs_done: int) -> None:
        """Tells the warm-up how many epochs are complete."""
        self.epochs_done = int(epochs_done)

    def _ratio_factor(self) -> float:
        """The ratio scale times the warm-up (1 with neither)."""
        factor = 1.0
        if self.warmup_epochs:
            factor *= min(1.0, self.epochs_done / self.warmup_epochs)
        if self.scale != "none":
            mean, second = self._reward_moments or (0.0, 0.0)
            var = max(second - mean**2, 0.0)
            factor *= math.sqrt(var if self.scale == "reward_std" else second)
        return factor

    def ratio_weight(self) -> float:
        """``w``: ``lam`` (1 in mode ``bound``) times the ratio scale and the warm-up."""
        return objective.ratio_weight(self.mode, self.lam) * self._ratio_factor()

    def ratio_term(self, logit: torch.Tensor) -> torch.Tensor:
        """``w * c * tanh(logit / c)``, the log-ratio term both players maximize."""
        return objective.ratio_term(logit, self.ratio_weight(), self.clip)

    def _track_reward_moments(self, reward: torch.Tensor) -> None:
        batch = (reward.mean().item(), reward.pow(2).mean().item())
        if self._reward_moments is None:
            self._reward_moments = batch
        else:
            self._reward_moments = tuple(
                (1 - _SCALE_MOMENTUM) * old + _SCALE_MOMENTUM * new
                for old, new in zip(self._reward_moments, batch, strict=True)
            )

    def set_discriminator(
        self,
        discriminator: Callable[..., torch.Tensor],
        sac_buffer: mbrl.util.ReplayBuffer | None = None,
    ) -> None:
        """Uses ``discriminator(obs, act, next_obs) -> logits`` for the next SAC batches.

        Args:
            discriminator: the discriminator just fitted.
            sac_buffer: SAC's buffer of model transitions. A ``ScoredReplayBuffer`` is
                scored by it from now on, and every row it holds is marked stale: scored
                again at SAC's next draw (the rows the rollouts overwrite first are
                scored as they are added).
        """
        self.discriminator = discriminator
        if isinstance(sac_buffer, ScoredReplayBuffer):
            sac_buffer.scorer = self._scorer()
            sac_buffer.invalidate()

    def _scorer(self) -> Callable[..., torch.Tensor] | None:
        """What scores SAC's rows: the current discriminator's :meth:`logits` (None before one)."""
        return self.logits if self.discriminator is not None else None

    def scored_buffer(self, buffer: mbrl.util.ReplayBuffer | None) -> mbrl.util.ReplayBuffer | None:
        """SAC's buffer as :meth:`sac_batch` reads it fastest, from mbrl's plain one.

        When SAC's reward has the ratio term (:attr:`uses_ratio`), a plain buffer becomes a
        ``ScoredReplayBuffer`` with the same rows at the same indices and the same
        generator, its rows scored by the current discriminator (none yet: 0). Otherwise
        (MBPO, the model-term-only ablation), and for ``None`` or a buffer scored already,
        ``buffer`` is returned as it is.

        Args:
            buffer: SAC's buffer, or ``None``.

        Returns:
            The buffer to train SAC on.
        """
        if not self.uses_ratio or buffer is None or isinstance(buffer, ScoredReplayBuffer):
            return buffer
        return ScoredReplayBuffer.from_buffer(buffer, scorer=self._scorer())

    @contextlib.contextmanager
    def batches_ahead(
        self, buffer: mbrl.util.ReplayBuffer | None, batch_size: int, count: int
    ) -> Iterator[None]:
        """Inside, the next ``count`` model batches of ``buffer`` are drawn, and scored, at once.

        The batches are drawn at once (the same distribution as ``count`` draws: rows
        uniformly with replacement). From a ``ScoredReplayBuffer`` they carry its stored
        logits; from another buffer the discriminator scores all of them in one forward
        pass instead of one per SAC update. :meth:`sac_batch` (so :meth:`update`) serves
        them in order; what is not used by the end of the block is dropped. Outside a
        block, and when SAC's reward has no ratio term or no discriminator is set yet,
        nothing is drawn ahead.

        Args:
            buffer: the buffer of model transitions SAC trains on.
            batch_size: rows per SAC batch.
            count: SAC updates to come (e.g. ``num_sac_updates_per_step``).
        """
        ready = self._reads_logit(model_data=True) and buffer is not None
        if ready and count > 1 and len(buffer) >= batch_size:
            # (from a plain buffer, one discriminator call for all)
            rows, logits = self._draw(buffer, batch_size * count, model_data=True)
            self._ahead = (buffer, [
                (rows[i * batch_size : (i + 1) * batch_size],
                 logits[i * batch_size : (i + 1) * batch_size])
                for i in range(count)
            ])  # fmt: skip
        try:
            yield
        finally:
            self._ahead = None

    def sac_batch(
        self, buffer: mbrl.util.ReplayBuffer, batch_size: int, model_data: bool = True
    ) -> mbrl.types.TransitionBatch:
        """A batch of ``buffer`` as SAC trains on it: its rewards relabelled with ``rt``.

        The one path by which SAC's batches get their logit. A batch of model rows is the
        next one :meth:`batches_ahead` drew from ``buffer``, or is drawn now: from a
        ``ScoredReplayBuffer`` with the logits it stores (its stale rows scored first),
        from another buffer scored by :meth:`logits`. Then :meth:`augmented_reward`
        relabels it (left as it is when ``rt = r``).

        Args:
            buffer: the buffer to draw from (``buffer.sample``'s draw).
            batch_size: rows in the batch.
            model_data: ``False`` for the real replay buffer (no ratio term).

        Returns:
            The batch, with SAC's rewards.
        """
        batch, logit = None, None
        ahead = self._ahead
        if model_data and ahead and ahead[0] is buffer and ahead[1]:
            batch, logit = ahead[1].pop(0)
        if batch is None or len(batch) != batch_size:
            batch, logit = self._draw(buffer, batch_size, model_data)
        if not self.changes_reward:  # rt = r: SAC gets the batch as sampled
            self.count_reward(batch.rewards, model_data)
            return batch
        rewards = self.augmented_reward(
            batch.obs, batch.act, batch.next_obs, batch.rewards, model_data, logit=logit
        )
        return dataclasses.replace(batch, rewards=rewards.numpy())

    def _reads_logit(self, model_data: bool) -> bool:
        """Whether the ratio term of a batch reads the discriminator's logit."""
        return model_data and self.uses_ratio and self.discriminator is not None

    def _draw(
        self, buffer: mbrl.util.ReplayBuffer, size: int, model_data: bool
    ) -> tuple[mbrl.types.TransitionBatch, torch.Tensor | None]:
        """``size`` rows of ``buffer`` (``buffer.sample``'s draw) and their logits on the CPU.

        From a ``ScoredReplayBuffer`` of model rows: the logits it stores (its stale rows
        scored first), without a call to the discriminator; from another buffer: the
        discriminator's, in one call, where the ratio term reads them, else ``None``.
        """
        if model_data and isinstance(buffer, ScoredReplayBuffer):
            rows, stored = buffer.sample_scored(size)
            return rows, torch.as_tensor(stored, dtype=torch.float32)
        rows = buffer.sample(size)
        if not self._reads_logit(model_data):
            return rows, None
        return rows, self.logits(rows.obs, rows.act, rows.next_obs).cpu()

    def logits(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> torch.Tensor:
        """``logit C(s, a, s')`` of the current discriminator, without gradient.

        Args:
            obs: observations, ``B x obs_dim``.
            act: actions, ``B x act_dim``.
            next_obs: next observations, ``B x obs_dim``.

        Returns:
            The logits, shape ``B``, on SAC's device.
        """
        device = self.sac_agent.device
        with torch.no_grad():
            return self.discriminator(
                torch.as_tensor(obs, dtype=torch.float32, device=device),
                torch.as_tensor(act, dtype=torch.float32, device=device),
                torch.as_tensor(next_obs, dtype=torch.float32, device=device),
            ).reshape(len(obs))

    def check_real_rewards(self, rewards: float | np.ndarray) -> None:
        """Refuses real rewards at or below the floor in ``bound`` mode."""
        if self.mode == "bound":
            objective.check_rewards_above_floor(torch.as_tensor(rewards), self.reward_floor)

    def augmented_reward(
        self,
        obs: np.ndarray,
        act: np.ndarray,
        next_obs: np.ndarray,
        reward: np.ndarray,
        model_data: bool = True,
        logit: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The reward SAC trains on: ``f(r) + ratio_term(logit C)`` for model transitions.

        Args:
            obs: observations, ``B x obs_dim``.
            act: actions, ``B x act_dim``.
            next_obs: next observations, ``B x obs_dim``.
            reward: rewards (predicted by the model for model transitions), ``B``.
            model_data: ``False`` for real transitions: ``f(r)`` only, no ratio term, and
                the ratio scale's running moments are left alone.
            logit: the current discriminator's logits at these transitions, as
                :meth:`sac_batch` gives them; ``None``: computed here by :meth:`logits`.

        Returns:
            The augmented rewards, shape ``B``, on the CPU.
        """
        # Relabelled on the CPU whatever SAC's device: mbrl's SAC takes its batches as
        # NumPy arrays and copies them to its device itself, and the rewards and stored
        # logits are NumPy already, so a GPU run waits for no GPU kernel here (the
        # discriminator runs on the device only for rows without a stored logit).
        reward_t = torch.as_tensor(reward, dtype=torch.float32)
        if model_data and self.scale != "none":
            self._track_reward_moments(reward_t)
        if not model_data or self.discriminator is None or not self.policy_ratio:
            logit = torch.zeros_like(reward_t)  # real data, no C yet, or ablated: ratio 0
        elif logit is None:
            logit = self.logits(obs, act, next_obs)
        logit = logit.cpu()  # (a no-op when it is there already)
        if model_data and self.discriminator is not None and self.policy_ratio:
            self._count_rollout_logits(logit)
        if self.mode == "bound":
            # A *predicted* reward can undershoot the floor that real rewards respect:
            # keep it just above, so log(r - floor) stays finite.
            reward_t = reward_t.clamp_min(self.reward_floor + 1e-6)
        rt = objective.augmented_reward(
            reward_t,
            logit,
            self.mode,
            self.gamma,
            self.lam,
            self.clip,
            self.reward_floor,
            ratio_factor=self._ratio_factor(),
            center=self.ratio_centering and model_data,
        )
        if not torch.isfinite(rt).all():
            raise NumericalError("augmented reward is not finite")
        self._reward_sum += rt.sum().item()
        self._reward_count += rt.numel()
        return rt

    def update(
        self,
        buffer: mbrl.util.ReplayBuffer,
        batch_size: int,
        updates: int,
        logger: mbrl.util.Logger | None = None,
        model_data: bool = True,
    ) -> None:
        """One SAC update on a batch of ``buffer`` relabelled with the augmented reward.

        ``model_data=False`` for the real replay buffer (no ratio term, see
        :meth:`augmented_reward`).
        """
        sampler = _AugmentedSampler(buffer, self, model_data)
        losses = self.sac_agent.update_parameters(
            sampler, batch_size, updates, logger, reverse_mask=True
        )
        if not np.isfinite(losses).all():
            raise NumericalError("SAC loss (critic, actor or temperature) is not finite")

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``V(s) = E_{a~pi}[min(Q1, Q2)(s, a) - alpha log pi(a|s)]`` (one reparameterized a).

        Differentiable in ``obs`` (the model step pushes ``ŝ'`` through it); callers
        freeze the policy and critic parameters.

        Args:
            obs: observations with any leading dims, ``... x obs_dim``.

        Returns:
            Values with the leading dims of ``obs``.
        """
        return self._soft_value(obs, self.sac_agent.critic)

    def target_value(self, obs: torch.Tensor) -> torch.Tensor:
        """:meth:`value` from SAC's target critic: ``E_{a~pi}[min(Q1, Q2)_target - alpha log pi]``.

        What the model's budgeted optimism tilts toward (the slowly moving critic that
        SAC's own targets use). Differentiable in ``obs``.

        Args:
            obs: observations with any leading dims, ``... x obs_dim``.

        Returns:
            Values with the leading dims of ``obs``.
        """
        return self._soft_value(obs, self.sac_agent.critic_target)

    def _soft_value(self, obs: torch.Tensor, critic: torch.nn.Module) -> torch.Tensor:
        sac = self.sac_agent
        flat = obs.reshape(-1, obs.shape[-1])
        act, log_pi, _ = sac.policy.sample(flat)
        q1, q2 = critic(flat, act)
        alpha = torch.as_tensor(sac.alpha, device=flat.device).detach()
        return (torch.min(q1, q2) - alpha * log_pi).reshape(obs.shape[:-1])

    def _count_rollout_logits(self, logit: torch.Tensor) -> None:
        if logit.numel():
            lse, count = self._rollout_logits
            batch = torch.logsumexp(logit.double().flatten(), 0).item()
            self._rollout_logits = (float(np.logaddexp(lse, batch)), count + logit.numel())

    def pop_rollout_calibration(self) -> float:
        """``mean exp(logit C)`` over the model rows of SAC's batches since the last call.

        The rows are rollouts: model next states at the rollouts' own states and the
        policy's actions, scored by the current discriminator. Like ``exp_logit_model`` on
        the discriminator's held-out replay rows, 1 for a calibrated log-ratio. NaN when
        SAC's reward read no logit (no discriminator yet, or no ratio term).
        """
        lse, count = self._rollout_logits
        self._rollout_logits = (-math.inf, 0)
        return math.exp(lse - math.log(count)) if count else math.nan

    def pop_bound_reward(self) -> float:
        """Mean augmented reward of the SAC batches since the last call (NaN if none)."""
        mean = self._reward_sum / self._reward_count if self._reward_count else float("nan")
        self._reward_sum, self._reward_count = 0.0, 0
        return mean

    def state_dict(self) -> dict[str, Any]:
        """SAC's networks, optimizers and temperature, the pending bound-reward mean and
        rollout calibration, the ratio scale's running moments and the warm-up's epoch
        count."""
        return {
            "sac": run_state.state_dict(self.sac_agent),
            "bound_reward": (self._reward_sum, self._reward_count),
            "reward_moments": self._reward_moments,
            "epochs_done": self.epochs_done,
            "rollout_logits": self._rollout_logits,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Loads :meth:`state_dict` into an agent of the same configuration."""
        run_state.load_state_dict(self.sac_agent, state["sac"])
        self._reward_sum, self._reward_count = state["bound_reward"]
        self._reward_moments = state["reward_moments"]
        self.epochs_done = state["epochs_done"]
        self._rollout_logits = tuple(state.get("rollout_logits", (-math.inf, 0)))
