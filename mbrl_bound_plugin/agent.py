"""The policy player: mbrl's SAC on the bound's augmented reward (``docs/algorithm.md``, step 3)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import mbrl.third_party.pytorch_sac_pranz24 as pytorch_sac_pranz24
import mbrl.types
import mbrl.util
import numpy as np
import torch
from mbrl.planning.sac_wrapper import SACAgent

from mbrl_bound_plugin import bound, run_state
from mbrl_bound_plugin.errors import NumericalError


class _AugmentedSampler:
    """Looks like a replay buffer to SAC; its batches carry the augmented reward."""

    def __init__(self, buffer: mbrl.util.ReplayBuffer, agent: BoundSACAgent):
        self.buffer = buffer
        self.agent = agent

    def sample(self, batch_size: int) -> mbrl.types.TransitionBatch:
        batch = self.buffer.sample(batch_size)
        rewards = self.agent.augmented_reward(batch.obs, batch.act, batch.next_obs, batch.rewards)
        return dataclasses.replace(batch, rewards=rewards.cpu().numpy())


class BoundSACAgent(SACAgent):
    """mbrl's SAC whose updates see ``rt = f(r̂) + lam * clip(logit C(s, a, ŝ'), -c, c)``.

    mode ``bound``: ``f(r) = (1 - gamma) log(r - reward_floor)`` and ``lam = 1`` (the
    bound itself). mode ``scaled``: ``f(r) = r`` with ``lam`` as configured (``lam = 0``
    is MBPO's reward). Every SAC batch is relabelled with the discriminator given to
    :meth:`set_discriminator`, i.e. the current one: the algorithm hands over each newly
    fitted discriminator right after its step, so a batch never sees an older one.

    Args:
        sac_agent: mbrl's ``pytorch_sac_pranz24.SAC`` (``cfg.algorithm.agent``).
        mode: ``"scaled"`` or ``"bound"``.
        lam: weight of the clipped log-ratio in ``scaled`` mode (ignored in ``bound``).
        clip: the clip ``c`` of the log-ratio.
        reward_floor: a number below every reward of the task (``bound`` mode only).
        gamma: the discount (SAC's ``gamma``).
    """

    def __init__(
        self,
        sac_agent: pytorch_sac_pranz24.SAC,
        mode: str = "scaled",
        lam: float = 0.1,
        clip: float = 10.0,
        reward_floor: float | None = None,
        gamma: float = 0.99,
    ):
        super().__init__(sac_agent)
        bound.check_reward_settings(mode, gamma, lam, clip, reward_floor)
        self.mode = mode
        self.lam = lam
        self.clip = clip
        self.reward_floor = reward_floor
        self.gamma = gamma
        self.discriminator: Callable[..., torch.Tensor] | None = None
        self._reward_sum = 0.0
        self._reward_count = 0

    def set_discriminator(self, discriminator: Callable[..., torch.Tensor]) -> None:
        """Uses ``discriminator(obs, act, next_obs) -> logits`` for the next SAC batches."""
        self.discriminator = discriminator

    def check_real_rewards(self, rewards: float | np.ndarray) -> None:
        """Refuses real rewards at or below the floor in ``bound`` mode."""
        if self.mode == "bound":
            bound.check_rewards_above_floor(torch.as_tensor(rewards), self.reward_floor)

    def augmented_reward(
        self,
        obs: np.ndarray,
        act: np.ndarray,
        next_obs: np.ndarray,
        reward: np.ndarray,
    ) -> torch.Tensor:
        """The reward SAC trains on, for a batch of (model) transitions.

        Args:
            obs: observations, ``B x obs_dim``.
            act: actions, ``B x act_dim``.
            next_obs: next observations, ``B x obs_dim``.
            reward: rewards (predicted by the model for model transitions), ``B``.

        Returns:
            The augmented rewards, shape ``B``.
        """
        device = self.sac_agent.device
        reward_t = torch.as_tensor(reward, dtype=torch.float32, device=device)
        if self.discriminator is None:  # before the first discriminator step: logit 0
            logit = torch.zeros_like(reward_t)
        else:
            with torch.no_grad():
                logit = self.discriminator(
                    torch.as_tensor(obs, dtype=torch.float32, device=device),
                    torch.as_tensor(act, dtype=torch.float32, device=device),
                    torch.as_tensor(next_obs, dtype=torch.float32, device=device),
                ).reshape(reward_t.shape)
        if self.mode == "bound":
            # A *predicted* reward can undershoot the floor that real rewards respect:
            # keep it just above, so log(r - floor) stays finite.
            reward_t = reward_t.clamp_min(self.reward_floor + 1e-6)
        rt = bound.augmented_reward(
            reward_t, logit, self.mode, self.gamma, self.lam, self.clip, self.reward_floor
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
    ) -> None:
        """One SAC update on a batch of ``buffer`` relabelled with the augmented reward."""
        losses = self.sac_agent.update_parameters(
            _AugmentedSampler(buffer, self), batch_size, updates, logger, reverse_mask=True
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
        """SAC's networks, optimizers and temperature, and the pending bound-reward mean."""
        return {
            "sac": run_state.state_dict(self.sac_agent),
            "bound_reward": (self._reward_sum, self._reward_count),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Loads :meth:`state_dict` into an agent of the same configuration."""
        run_state.load_state_dict(self.sac_agent, state["sac"])
        self._reward_sum, self._reward_count = state["bound_reward"]
