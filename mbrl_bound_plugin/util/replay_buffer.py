"""SAC's buffer of model transitions, each row stored with the current discriminator's logit.

SAC reads far more model rows than the rollouts write: every update samples a batch,
and the discriminator ``C`` changes only at a discriminator step. So instead of scoring
each sampled batch, :class:`ScoredReplayBuffer` scores a row once, when it enters the
buffer, and again after ``C`` changed: :meth:`ScoredReplayBuffer.invalidate` marks every
stored row stale, and the next draw scores the rows still stale then, i.e. those the
rollouts that follow a discriminator step did not overwrite. SAC's batches read the
stored logits (``docs/algorithm.md``, the deep algorithm's step 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mbrl.types
import mbrl.util
import numpy as np
import torch

# obs, act, next_obs (B rows each) -> the B logits, as a tensor or an array
Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray], torch.Tensor | np.ndarray]
# rows per scorer call when the whole buffer is scored
RESCORE_CHUNK = 8192
_COLUMNS = ("obs", "next_obs", "action", "reward", "terminated", "truncated")


class ScoredReplayBuffer(mbrl.util.ReplayBuffer):
    """mbrl's ``ReplayBuffer`` with a float32 logit per row, kept equal to ``scorer``'s.

    Rows added with :meth:`add` or :meth:`add_batch` are scored as they are stored; call
    :meth:`invalidate` (scored at the next draw) or :meth:`rescore` (scored now) whenever
    what ``scorer`` computes changes (e.g. after the discriminator is fitted). While
    ``scorer`` is ``None`` the logits are 0. :meth:`sample_scored` first scores the rows
    left stale, then draws exactly the rows :meth:`sample` would (the same draws from the
    buffer's generator) and returns their stored logits with them.

    Args:
        capacity: the most rows the buffer holds (the oldest are overwritten).
        obs_shape: the shape of an observation.
        action_shape: the shape of an action.
        scorer: ``scorer(obs, act, next_obs) -> logits`` for ``B`` rows, or ``None``.
        chunk_size: at most this many rows per scorer call.
        **kwargs: the other arguments of mbrl's ``ReplayBuffer`` (``obs_type``, ``rng``,
            ...).

    Attributes:
        logits: the logit of each row (indices as the buffer's own; rows past
            ``num_stored`` are meaningless).
        stale: whether each row's logit predates the last :meth:`invalidate`.
        rows_scored: how many rows were given to ``scorer`` so far.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        scorer: Scorer | None = None,
        chunk_size: int = RESCORE_CHUNK,
        **kwargs: Any,
    ):
        super().__init__(capacity, obs_shape, action_shape, **kwargs)
        if int(chunk_size) != chunk_size or chunk_size < 1:
            raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size}")
        self.scorer = scorer
        self.chunk_size = int(chunk_size)
        self.logits = np.zeros(len(self.obs), dtype=np.float32)
        self.stale = np.zeros(len(self.obs), dtype=bool)
        self.rows_scored = 0
        self._sampled: np.ndarray | None = None

    @classmethod
    def from_buffer(
        cls,
        buffer: mbrl.util.ReplayBuffer,
        scorer: Scorer | None = None,
        chunk_size: int = RESCORE_CHUNK,
    ) -> ScoredReplayBuffer:
        """A scored copy of ``buffer``: its rows at the same indices, its generator, scored.

        The copy shares ``buffer``'s random generator (as mbrl's ``maybe_replace_sac_buffer``
        passes it on), so it samples what ``buffer`` would have.

        Args:
            buffer: a buffer without trajectory information (``max_trajectory_length``).
            scorer: see the class.
            chunk_size: see the class.

        Returns:
            The new buffer, every stored row scored.

        Raises:
            ValueError: ``buffer`` keeps trajectory information.
        """
        if buffer.stores_trajectories:
            raise ValueError("a buffer that keeps trajectories cannot be copied")
        copy = cls(
            buffer.capacity,
            buffer.obs.shape[1:],
            buffer.action.shape[1:],
            scorer=scorer,
            chunk_size=chunk_size,
            obs_type=buffer.obs.dtype,
            action_type=buffer.action.dtype,
            reward_type=buffer.reward.dtype,
            rng=buffer.rng,
        )
        n = buffer.num_stored
        for name in _COLUMNS:
            getattr(copy, name)[:n] = getattr(buffer, name)[:n]
        copy.cur_idx, copy.num_stored = buffer.cur_idx, n
        copy.rescore()
        return copy

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        next_obs: np.ndarray,
        reward: float,
        terminated: bool,
        truncated: bool,
    ) -> None:
        """mbrl's ``add``, then the new row is scored.

        Args:
            obs: the observation.
            action: the action.
            next_obs: the next observation.
            reward: the reward.
            terminated: whether the episode ended in a terminal state.
            truncated: whether the episode was cut short.
        """
        index = self.cur_idx
        super().add(obs, action, next_obs, reward, terminated, truncated)
        self._score(np.array([index]))

    def add_batch(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        next_obs: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """mbrl's ``add_batch``, then the new rows are scored (in one call up to ``chunk_size``).

        Args:
            obs: observations, ``B x obs_shape``.
            action: actions, ``B x action_shape``.
            next_obs: next observations, ``B x obs_shape``.
            reward: rewards, ``B``.
            terminated: terminal flags, ``B``.
            truncated: truncation flags, ``B``.
        """
        start = self.cur_idx
        super().add_batch(obs, action, next_obs, reward, terminated, truncated)
        self._score((start + np.arange(len(obs))) % self.capacity)

    def rescore(self) -> None:
        """Scores every stored row again, ``chunk_size`` rows per scorer call."""
        self._score(np.arange(self.num_stored))

    def invalidate(self) -> None:
        """Marks every stored row stale: the next draw scores those not overwritten by then."""
        self.stale[: self.num_stored] = True

    def score_stale(self) -> None:
        """Scores the stored rows marked stale (in index order, ``chunk_size`` per call)."""
        stale = np.flatnonzero(self.stale[: self.num_stored])
        if len(stale):
            self._score(stale)

    def _score(self, indices: np.ndarray) -> None:
        """Stores ``scorer``'s logits (0 without a scorer) of the rows at ``indices``."""
        self.stale[indices] = False
        if self.scorer is None or len(indices) == 0:
            self.logits[indices] = 0.0
            return
        for start in range(0, len(indices), self.chunk_size):
            rows = indices[start : start + self.chunk_size]
            logits = self.scorer(self.obs[rows], self.action[rows], self.next_obs[rows])
            if torch.is_tensor(logits):
                logits = logits.detach().cpu().numpy()
            self.logits[rows] = np.asarray(logits, dtype=np.float32).reshape(len(rows))
            self.rows_scored += len(rows)

    def _batch_from_indices(self, indices: np.ndarray) -> mbrl.types.TransitionBatch:
        """mbrl's batch of the rows at ``indices``; the indices are kept for the logits."""
        self._sampled = np.asarray(indices)
        return super()._batch_from_indices(indices)

    def sample_scored(self, batch_size: int) -> tuple[mbrl.types.TransitionBatch, np.ndarray]:
        """:meth:`sample` and the stored logits of the rows it drew (stale rows scored first).

        Args:
            batch_size: how many rows (uniformly, with replacement, as mbrl's ``sample``).

        Returns:
            The batch and its logits (float32, shape ``batch_size``).
        """
        self.score_stale()
        batch = self.sample(batch_size)
        return batch, self.logits[self._sampled]
