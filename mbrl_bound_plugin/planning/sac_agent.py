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
    """Looks like a replay buffer to SAC; its batches carry the augmented reward."""

    def __init__(self, buffer: mbrl.util.ReplayBuffer, agent: BoundSACAgent, model_data: bool):
        self.buffer = buffer
        self.agent = agent
        self.model_data = model_data

    def sample(self, batch_size: int) -> mbrl.types.TransitionBatch:
        batch, logit = None, None
        ahead = self.agent._ahead
        if self.model_data and ahead and ahead[0] is self.buffer and ahead[1]:
            batch, logit = ahead[1].pop(0)
        if batch is None or len(batch) != batch_size:
            batch, logit = self.agent.draw(self.buffer, batch_size, self.model_data)
        if not self.agent.changes_reward:  # rt = r: SAC gets the batch as sampled
            self.agent.count_reward(batch.rewards, self.model_data)
            return batch
        rewards = self.agent.augmented_reward(
            batch.obs, batch.act, batch.next_obs, batch.rewards, self.model_data, logit=logit
        )
        return dataclasses.replace(batch, rewards=rewards.numpy())


class BoundSACAgent(SACAgent):
    """mbrl's SAC whose updates see ``rt = f(r̂) + w * c * tanh(logit C(s, a, ŝ') / c)``.

    mode ``bound``: ``f(r) = (1 - gamma) log(r - reward_floor)`` and ``w = 1`` (the bound
    itself). mode ``scaled``: ``f(r) = r`` and ``w = lam`` times the ratio scale (``lam =
    0`` is MBPO's reward). In both, ``w`` ramps in linearly over the first
    ``warmup_epochs`` epochs. :meth:`ratio_term` is the one definition of this term: the
    model step reads it too. Every SAC batch of model transitions is relabelled with the
    discriminator given to :meth:`set_discriminator`, i.e. the current one: from a
    :class:`~mbrl_bound_plugin.util.replay_buffer.ScoredReplayBuffer`, with the logits it
    stores (kept equal to :meth:`logits` by whoever owns the buffer); from another buffer,
    by calling it. Batches of real transitions get ``f(r)`` only (their log-ratio is
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
        self.epochs_done = 0
        self.discriminator: Callable[..., torch.Tensor] | None = None
        self._reward_sum = 0.0
        self._reward_count = 0
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

    def set_discriminator(self, discriminator: Callable[..., torch.Tensor]) -> None:
        """Uses ``discriminator(obs, act, next_obs) -> logits`` for the next SAC batches."""
        self.discriminator = discriminator

    @contextlib.contextmanager
    def batches_ahead(
        self, buffer: mbrl.util.ReplayBuffer | None, batch_size: int, count: int
    ) -> Iterator[None]:
        """Inside, the next ``count`` model batches of ``buffer`` are drawn, and scored, at once.

        The batches are drawn at once (the same distribution as ``count`` draws: rows
        uniformly with replacement). From a ``ScoredReplayBuffer`` they carry its stored
        logits; from another buffer the discriminator scores all of them in one forward
        pass instead of one per SAC update. :meth:`update` serves them in order; what is
        not used by the end of the block is dropped. Outside a block, and when SAC's
        reward has no ratio term or no discriminator is set yet, nothing is drawn ahead.

        Args:
            buffer: the buffer of model transitions SAC trains on.
            batch_size: rows per SAC batch.
            count: SAC updates to come (e.g. ``num_sac_updates_per_step``).
        """
        ready = self.uses_ratio and self.discriminator is not None and buffer is not None
        if ready and count > 1 and len(buffer) >= batch_size:
            rows, logits = self.draw(buffer, batch_size * count)
            if logits is None:  # not a ScoredReplayBuffer: one discriminator call for all
                logits = self.logits(rows.obs, rows.act, rows.next_obs).cpu()
            self._ahead = (buffer, [
                (rows[i * batch_size : (i + 1) * batch_size],
                 logits[i * batch_size : (i + 1) * batch_size])
                for i in range(count)
            ])  # fmt: skip
        try:
            yield
        finally:
            self._ahead = None

    def draw(
        self, buffer: mbrl.util.ReplayBuffer, size: int, model_data: bool = True
    ) -> tuple[mbrl.types.TransitionBatch, torch.Tensor | None]:
        """``size`` rows of ``buffer`` (``buffer.sample``'s draw) and their stored logits.

        The logits (as :meth:`stored_logits`) come from a ``ScoredReplayBuffer`` of model
        rows, without a call to the discriminator; otherwise they are ``None``.
        """
        if model_data and isinstance(buffer, ScoredReplayBuffer):
            rows, stored = buffer.sample_scored(size)
            return rows, self.stored_logits(stored)
        return buffer.sample(size), None

    def stored_logits(self, logits: np.ndarray) -> torch.Tensor:
        """Logits stored by a ``ScoredReplayBuffer``, as a float32 tensor on the CPU, where
        :meth:`augmented_reward` relabels."""
        return torch.as_tensor(logits, dtype=torch.float32)

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
            logit: the current discriminator's logits at these transitions, if already
                computed (stored in a ``ScoredReplayBuffer``, or :meth:`batches_ahead`);
                ``None``: computed here.

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
        sac = self.sac_agent
        flat = obs.reshape(-1, obs.shape[-1])
        act, log_pi, _ = sac.policy.sample(flat)
        q1, q2 = sac.critic(flat, act)
        alpha = torch.as_tensor(sac.alpha, device=flat.device).detach()
        return (torch.min(q1, q2) - alpha * log_pi).reshape(obs.shape[:-1])

    def pop_bound_reward(self) -> float:
        """Mean augmented reward of the SAC batches since the last call (NaN if none)."""
        mean = self._reward_sum / self._reward_count if self._reward_count else float("nan")
        self._reward_sum, self._reward_count = 0.0, 0
        return mean

    def state_dict(self) -> dict[str, Any]:
        """SAC's networks, optimizers and temperature, the pending bound-reward mean, the
        ratio scale's running moments and the warm-up's epoch count."""
        return {
            "sac": run_state.state_dict(self.sac_agent),
            "bound_reward": (self._reward_sum, self._reward_count),
            "reward_moments": self._reward_moments,
            "epochs_done": self.epochs_done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Loads :meth:`state_dict` into an agent of the same configuration."""
        run_state.load_state_dict(self.sac_agent, state["sac"])
        self._reward_sum, self._reward_count = state["bound_reward"]
        self._reward_moments = state["reward_moments"]
        self.epochs_done = state["epochs_done"]
