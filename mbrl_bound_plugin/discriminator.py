"""The discriminator ``C(s,a,s')`` whose logit estimates ``log p(s'|s,a) - log q(s'|s,a)``.

A classifier trained with the logistic loss on real transitions (label 1) against model
transitions at the same ``(s, a)`` (label 0), in equal numbers, has ``C/(1-C) = p/q`` at
its optimum, so its raw pre-sigmoid output is the log-ratio the bound needs
(``docs/algorithm.md``, estimating the ratio, and the deep algorithm's step 1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from mbrl_bound_plugin import bound

# how many of the final training steps ``disc_loss`` averages over
_LOSS_WINDOW = 10


def _as_float_tensor(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Converts an array or tensor to a float32 tensor on ``device`` (no copy when possible)."""
    return torch.as_tensor(x).to(device=device, dtype=torch.float32)


class Discriminator(nn.Module):
    """MLP classifier ``C(s,a,s')`` of real vs model transitions; ``forward`` gives logits.

    The input features are ``[obs, act, next_obs - obs]``, standardized with a mean and
    standard deviation (buffers, saved in ``state_dict``) taken from the real training
    rows at every :meth:`fit`. Its Adam optimizer persists across fits, so each fit
    warm-starts from the previous one.

    Args:
        obs_dim: observation size.
        act_dim: action size.
        hid_size: width of each hidden layer.
        num_layers: number of hidden layers (SiLU activations).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        batch_size: rows per mini-batch; each step sees ``batch_size`` real and the same
            rows' ``batch_size`` model transitions.
        num_updates: Adam steps per :meth:`fit`.
        holdout_ratio: fraction of rows held out to report accuracy and the KL estimate.
        device: torch device for the parameters and computations.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hid_size: int = 200,
        num_layers: int = 2,
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        batch_size: int = 256,
        num_updates: int = 100,
        holdout_ratio: float = 0.1,
        device: str | torch.device = "cpu",
    ):
        super().__init__()
        for name, val in (
            ("obs_dim", obs_dim),
            ("act_dim", act_dim),
            ("hid_size", hid_size),
            ("num_layers", num_layers),
            ("batch_size", batch_size),
            ("num_updates", num_updates),
        ):
            if int(val) != val or val < 1:
                raise ValueError(f"discriminator.{name} must be an integer >= 1, got {val}")
        if lr <= 0:
            raise ValueError(f"discriminator.lr must be > 0, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"discriminator.weight_decay must be >= 0, got {weight_decay}")
        if not 0.0 < holdout_ratio < 1.0:
            raise ValueError(f"discriminator.holdout_ratio must be in (0, 1), got {holdout_ratio}")

        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.batch_size = int(batch_size)
        self.num_updates = int(num_updates)
        self.holdout_ratio = float(holdout_ratio)
        self.device = torch.device(device)

        in_size = 2 * self.obs_dim + self.act_dim
        layers: list[nn.Module] = []
        width = in_size
        for _ in range(int(num_layers)):
            layers += [nn.Linear(width, int(hid_size)), nn.SiLU()]
            width = int(hid_size)
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("feature_mean", torch.zeros(in_size))
        self.register_buffer("feature_std", torch.ones(in_size))
        self.to(self.device)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)

    def _features(
        self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor
    ) -> torch.Tensor:
        """Raw features ``[obs, act, next_obs - obs]``, broadcast over leading dims."""
        if obs.shape[-1] != self.obs_dim or next_obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"obs and next_obs must end in obs_dim={self.obs_dim}, got "
                f"{tuple(obs.shape)} and {tuple(next_obs.shape)}"
            )
        if act.shape[-1] != self.act_dim:
            raise ValueError(f"act must end in act_dim={self.act_dim}, got {tuple(act.shape)}")
        lead = torch.broadcast_shapes(obs.shape[:-1], act.shape[:-1], next_obs.shape[:-1])
        obs = obs.expand(*lead, self.obs_dim)
        act = act.expand(*lead, self.act_dim)
        next_obs = next_obs.expand(*lead, self.obs_dim)
        return torch.cat([obs, act, next_obs - obs], dim=-1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Raw logits ``logit C(s,a,s')``, the estimate of ``log p(s'|s,a) - log q(s'|s,a)``.

        Gradients flow to ``next_obs`` (the model step differentiates through it).

        Args:
            obs: observations, shape ``(..., obs_dim)``.
            act: actions, shape ``(..., act_dim)``.
            next_obs: next observations, shape ``(..., obs_dim)``; the leading dims of the
                three inputs are broadcast together (e.g. ``B`` obs with ``E x B`` next_obs).

        Returns:
            Logits with the broadcast leading shape (``(B,)`` for ``B x dim`` inputs).
        """
        to = {"device": self.device, "dtype": torch.float32}
        features = self._features(obs.to(**to), act.to(**to), next_obs.to(**to))
        features = (features - self.feature_mean) / self.feature_std
        return self.net(features).squeeze(-1)

    def num_train_rows(self, num_rows: int) -> int:
        """Rows a :meth:`fit` on ``num_rows`` rows trains on (at least one is held out).

        Args:
            num_rows: rows given to :meth:`fit` (at least 2).

        Returns:
            ``num_rows`` minus the held-out slice of ``round(holdout_ratio * num_rows)``
            rows, clipped to ``[1, num_rows - 1]``.
        """
        return num_rows - min(max(1, int(round(self.holdout_ratio * num_rows))), num_rows - 1)

    def fit(
        self,
        obs: np.ndarray | torch.Tensor,
        act: np.ndarray | torch.Tensor,
        next_obs: np.ndarray | torch.Tensor,
        model_next_obs: np.ndarray | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, float]:
        """Discriminator step: real `(obs, act, next_obs)` vs model `(obs, act, model_next_obs)`.

        Minimizes ``bound.logistic_loss`` (deep algorithm, step 1) with ``num_updates``
        Adam steps. Each step takes ``batch_size`` training rows and uses both their real
        and their model next observation, so real and model transitions come at the same
        ``(s, a)`` and in equal numbers. A random ``holdout_ratio`` slice of rows (at
        least one) is held out for the reported accuracy and KL estimate.

        Args:
            obs: observations, shape ``N x obs_dim`` (numpy or torch, any float dtype).
            act: actions, shape ``N x act_dim``.
            next_obs: real next observations ``s' ~ p``, shape ``N x obs_dim``.
            model_next_obs: model samples ``ŝ' ~ q`` at the same rows, shape ``N x obs_dim``.
            generator: CPU random generator for the split and the mini-batches; ``None``
                uses torch's global generator.

        Returns:
            ``disc_loss``: mean training loss of the last (up to 10) steps;
            ``disc_accuracy``: held-out balanced accuracy (0.5 = indistinguishable);
            ``kl_estimate``: ``-mean`` held-out logit at model transitions, estimating
            ``KL(q || p)``.

        Raises:
            ValueError: on inconsistent shapes, fewer than two rows, or a ``batch_size``
                larger than the number of training rows.
        """
        obs_t = _as_float_tensor(obs, self.device)
        act_t = _as_float_tensor(act, self.device)
        real_t = _as_float_tensor(next_obs, self.device)
        fake_t = _as_float_tensor(model_next_obs, self.device)
        num_rows = obs_t.shape[0]
        expected = {
            "obs": (obs_t, self.obs_dim),
            "act": (act_t, self.act_dim),
            "next_obs": (real_t, self.obs_dim),
            "model_next_obs": (fake_t, self.obs_dim),
        }
        for name, (x, dim) in expected.items():
            if tuple(x.shape) != (num_rows, dim):
                raise ValueError(
                    f"{name} must have shape ({num_rows}, {dim}), got {tuple(x.shape)}"
                )
        if num_rows < 2:
            raise ValueError(f"the discriminator needs at least 2 rows to fit, got {num_rows}")

        # split rows: a random holdout slice (>= 1 row), the rest for training
        perm = torch.randperm(num_rows, generator=generator).to(self.device)
        num_holdout = num_rows - self.num_train_rows(num_rows)
        hold_idx, train_idx = perm[:num_holdout], perm[num_holdout:]
        num_train = train_idx.numel()
        if self.batch_size > num_train:
            raise ValueError(
                f"discriminator.batch_size={self.batch_size} exceeds the {num_train} training "
                f"rows (of {num_rows}, after holding out {num_holdout}); lower "
                f"discriminator.batch_size or collect more data"
            )

        # standardize features with the statistics of the real training transitions
        with torch.no_grad():
            feats = self._features(obs_t[train_idx], act_t[train_idx], real_t[train_idx])
            std = feats.std(dim=0)
            std[std < 1e-6] = 1.0
            self.feature_mean.copy_(feats.mean(dim=0))
            self.feature_std.copy_(std)

        # logistic loss: -mean log sigmoid(C(s,a,s')) - mean log(1 - sigmoid(C(s,a,ŝ')))
        self.train()
        losses: list[float] = []
        order = torch.randperm(num_train, generator=generator).to(self.device)
        pos = 0
        for _ in range(self.num_updates):
            if pos + self.batch_size > num_train:  # new pass over the training rows
                order = torch.randperm(num_train, generator=generator).to(self.device)
                pos = 0
            rows = train_idx[order[pos : pos + self.batch_size]]
            pos += self.batch_size
            o, a = obs_t[rows], act_t[rows]
            loss = bound.logistic_loss(self(o, a, real_t[rows]), self(o, a, fake_t[rows]))
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())

        self.eval()
        with torch.no_grad():
            o, a = obs_t[hold_idx], act_t[hold_idx]
            real_logits = self(o, a, real_t[hold_idx])
            model_logits = self(o, a, fake_t[hold_idx])
            accuracy = bound.balanced_accuracy(real_logits, model_logits).item()
            kl = bound.kl_estimate(model_logits).item()
        return {
            "disc_loss": float(np.mean(losses[-_LOSS_WINDOW:])),
            "disc_accuracy": float(accuracy),
            "kl_estimate": float(kl),
        }

    @contextlib.contextmanager
    def freeze(self) -> Iterator[Discriminator]:
        """Context manager: parameters get ``requires_grad=False``, restored on exit.

        Inputs keep their gradients, so a loss through ``forward`` still differentiates
        with respect to ``next_obs``.

        Yields:
            This discriminator.
        """
        saved = [(p, p.requires_grad) for p in self.parameters()]
        for p, _ in saved:
            p.requires_grad_(False)
        try:
            yield self
        finally:
            for p, flag in saved:
                p.requires_grad_(flag)
