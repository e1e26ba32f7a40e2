"""The discriminator ``C(s,a,s')`` whose logit estimates ``log p(s'|s,a) - log q(s'|s,a)``.

A classifier trained with the logistic loss on real transitions (label 1) against model
transitions at the same ``(s, a)`` (label 0), in equal numbers, has ``C/(1-C) = p/q`` at
its optimum, so its raw pre-sigmoid output is the log-ratio the bound needs
(``docs/algorithm.md``, estimating the ratio, and the deep algorithm's step 1).

Against deterministic real dynamics the two classes are separable and that optimum is
at infinity, so the discriminator estimates the ratio of the *smoothed* densities
instead: Gaussian noise of scale ``noise_scale`` on the (standardized) next-state
features of both classes while training, clean inputs when scored. Spectral norm, a
gradient penalty on real inputs, weight decay and early stopping on the held-out
log-loss keep the logit from saturating (``docs/algorithm.md``, a calibrated ratio).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from mbrl_bound_plugin import objective

# how many of the final training steps ``disc_loss`` averages over
_LOSS_WINDOW = 10


def _as_float_tensor(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Converts an array or tensor to a float32 tensor on ``device`` (no copy when possible)."""
    return torch.as_tensor(x).to(device=device, dtype=torch.float32)


def _number(val: object) -> bool:
    return isinstance(val, int | float) and not isinstance(val, bool)


def _integer_at_least(low: int) -> Callable[[object], bool]:
    return lambda val: _number(val) and int(val) == val and val >= low


# What each of :class:`Discriminator`'s numeric arguments must be: a test and its words.
_SETTING_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    **{
        name: (_integer_at_least(1), "an integer >= 1")
        for name in (
            "obs_dim",
            "act_dim",
            "hid_size",
            "num_layers",
            "batch_size",
            "num_updates",
            "eval_every",
        )
    },
    "patience": (_integer_at_least(0), "an integer >= 0"),
    **{
        name: (lambda val: _number(val) and val >= 0, ">= 0")
        for name in ("noise_scale", "grad_penalty", "weight_decay")
    },
    "lr": (lambda val: _number(val) and val > 0, "> 0"),
    "holdout_ratio": (lambda val: _number(val) and 0.0 < val < 1.0, "in (0, 1)"),
}


def check_settings(**settings: object) -> None:
    """Refuses discriminator settings that cannot work (:class:`Discriminator`'s arguments).

    Builds nothing, so the command can check ``discriminator.*`` before a run starts.
    Checks the numeric arguments given; others (``spectral_norm``, ``device``,
    ``_target_``) are passed over.

    Raises:
        ValueError: naming the key and what it must be.
    """
    for name, val in settings.items():
        if name in _SETTING_RULES:
            valid, requirement = _SETTING_RULES[name]
            if not valid(val):
                raise ValueError(f"discriminator.{name} must be {requirement}, got {val!r}")


class Discriminator(nn.Module):
    """MLP classifier ``C(s,a,s')`` of real vs model transitions; ``forward`` gives logits.

    The input features are ``[obs, act, next_obs - obs]``, standardized with a mean and
    standard deviation (buffers, saved in ``state_dict``) taken from the real training
    rows at every :meth:`fit`. Its Adam optimizer persists across fits, so each fit
    warm-starts from the previous one.

    The logit is kept a finite, calibrated log-ratio by: ``noise_scale`` (the smoothing
    kernel's width, in standard deviations of the real next-state changes), spectral
    normalization of every layer, a gradient penalty on real inputs, weight decay, and
    early stopping on the held-out log-loss (the best weights of a fit are kept).

    Args:
        obs_dim: observation size.
        act_dim: action size.
        hid_size: width of each hidden layer.
        num_layers: number of hidden layers (SiLU activations).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        batch_size: rows per mini-batch; each step sees ``batch_size`` real and the same
            rows' ``batch_size`` model transitions (all training rows when there are
            fewer).
        num_updates: at most this many Adam steps per :meth:`fit`.
        holdout_ratio: fraction of rows held out: early stopping and the diagnostics.
        noise_scale: standard deviation of the Gaussian noise added to the standardized
            next-state change features of both classes while training; ``0`` for none.
        spectral_norm: spectral normalization on every linear layer.
        grad_penalty: weight of ``E_p[|grad_x logit|^2] / 2`` on real inputs (``0``: off).
        patience: stop a fit after this many held-out checks without a lower held-out
            log-loss, and keep the best weights (``0``: run all ``num_updates``).
        eval_every: Adam steps between held-out checks (with ``patience > 0``).
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
        noise_scale: float = 0.3,
        spectral_norm: bool = False,
        grad_penalty: float = 0.0,
        patience: int = 3,
        eval_every: int = 10,
        device: str | torch.device = "cpu",
    ):
        super().__init__()
        check_settings(
            obs_dim=obs_dim,
            act_dim=act_dim,
            hid_size=hid_size,
            num_layers=num_layers,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            num_updates=num_updates,
            holdout_ratio=holdout_ratio,
            noise_scale=noise_scale,
            grad_penalty=grad_penalty,
            patience=patience,
            eval_every=eval_every,
        )

        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.batch_size = int(batch_size)
        self.num_updates = int(num_updates)
        self.holdout_ratio = float(holdout_ratio)
        self.noise_scale = float(noise_scale)
        self.grad_penalty = float(grad_penalty)
        self.patience = int(patience)
        self.eval_every = int(eval_every)
        self.device = torch.device(device)

        in_size = 2 * self.obs_dim + self.act_dim
        norm = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        width = in_size
        for _ in range(int(num_layers)):
            layers += [norm(nn.Linear(width, int(hid_size))), nn.SiLU()]
            width = int(hid_size)
        layers.append(norm(nn.Linear(width, 1)))
        self.net = nn.Sequential(*layers)
        self.register_buffer("feature_mean", torch.zeros(in_size))
        self.register_buffer("feature_std", torch.ones(in_size))
        self.to(self.device)
        self.eval()  # scoring never runs spectral norm's power iteration; fit trains
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
        return self._logits(self._standardized(obs, act, next_obs))

    def _standardized(
        self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor
    ) -> torch.Tensor:
        to = {"device": self.device, "dtype": torch.float32}
        features = self._features(obs.to(**to), act.to(**to), next_obs.to(**to))
        return (features - self.feature_mean) / self.feature_std

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)

    def _smoothed(self, features: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Adds the smoothing kernel's noise to the next-state change features."""
        if self.noise_scale == 0.0:
            return features
        change = features[..., -self.obs_dim :]
        noise = torch.randn(change.shape, generator=generator).to(self.device)
        return torch.cat([features[..., : -self.obs_dim], change + self.noise_scale * noise], -1)

    def _training_loss(
        self, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Logistic loss on smoothed features, plus the gradient penalty on real inputs."""
        real = self._smoothed(real, generator)
        fake = self._smoothed(fake, generator)
        if self.grad_penalty > 0.0:
            real = real.detach().requires_grad_(True)
        real_logits = self._logits(real)
        loss = objective.logistic_loss(real_logits, self._logits(fake))
        if self.grad_penalty > 0.0:
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            loss = loss + 0.5 * self.grad_penalty * grad.pow(2).sum(-1).mean()
        return loss

    @torch.no_grad()
    def _held_out(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """The diagnostics on clean held-out features (see :meth:`fit`)."""
        was_training = self.training
        self.eval()
        real_logits, model_logits = self._logits(real), self._logits(fake)
        self.train(was_training)
        calib = objective.calibration(real_logits, model_logits)
        return {
            "disc_logloss": objective.logistic_loss(real_logits, model_logits).item(),
            "disc_accuracy": objective.balanced_accuracy(real_logits, model_logits).item(),
            "kl_estimate": objective.kl_estimate(model_logits).item(),
            **{k: v.item() for k, v in calib.items()},
        }

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

        Minimizes ``objective.logistic_loss`` (deep algorithm, step 1) with up to
        ``num_updates`` Adam steps. Each step takes ``batch_size`` training rows (all of
        them when there are fewer) and uses both their real and their model next
        observation, so real and model transitions come at the same ``(s, a)`` and in
        equal numbers; both get the smoothing noise. A random ``holdout_ratio`` slice of
        the rows (at least one), disjoint from the training rows, is not trained on in this fit:
        early stopping and every returned diagnostic use it, with clean inputs.

        Args:
            obs: observations, shape ``N x obs_dim`` (numpy or torch, any float dtype).
            act: actions, shape ``N x act_dim``.
            next_obs: real next observations ``s' ~ p``, shape ``N x obs_dim``.
            model_next_obs: model samples ``ŝ' ~ q`` at the same rows, shape ``N x obs_dim``.
            generator: CPU random generator for the split, the mini-batches and the
                noise; ``None`` uses torch's global generator.

        Returns:
            ``disc_loss``: mean training loss of the last (up to 10) steps;
            ``disc_logloss``: held-out logistic loss (``2 ln 2 = 1.386`` at chance);
            ``disc_accuracy``: held-out balanced accuracy (0.5 = indistinguishable);
            ``kl_estimate``: ``-mean`` held-out logit at model transitions, estimating
            ``KL(q || p)``;
            ``exp_logit_model`` and ``exp_neglogit_real``: :func:`objective.calibration` on
            the held-out rows (both 1 for a calibrated log-ratio);
            ``disc_updates``: Adam steps taken; ``disc_batch_size``: rows per step.

        Raises:
            ValueError: on inconsistent shapes or fewer than two rows.
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

        # split rows: a random holdout slice (>= 1 row), the rest, disjoint, for training
        perm = torch.randperm(num_rows, generator=generator).to(self.device)
        num_holdout = num_rows - self.num_train_rows(num_rows)
        hold_idx, train_idx = perm[:num_holdout], perm[num_holdout:]
        num_train = train_idx.numel()
        batch_size = min(self.batch_size, num_train)

        # standardize features with the statistics of the real training transitions
        with torch.no_grad():
            feats = self._features(obs_t[train_idx], act_t[train_idx], real_t[train_idx])
            std = feats.std(dim=0) if num_train > 1 else torch.ones_like(feats[0])
            std[std < 1e-6] = 1.0
            self.feature_mean.copy_(feats.mean(dim=0))
            self.feature_std.copy_(std)
            real_f = self._standardized(obs_t, act_t, real_t)
            fake_f = self._standardized(obs_t, act_t, fake_t)
        held_real, held_fake = real_f[hold_idx], fake_f[hold_idx]

        def held_out_logloss() -> float:
            return self._held_out(held_real, held_fake)["disc_logloss"]

        best = (held_out_logloss(), copy.deepcopy(self.net.state_dict())) if self.patience else None
        checks_since_best = 0

        # logistic loss: -mean log sigmoid(C(s,a,s')) - mean log(1 - sigmoid(C(s,a,ŝ')))
        self.train()
        losses: list[float] = []
        order = torch.randperm(num_train, generator=generator).to(self.device)
        pos = 0
        for step in range(1, self.num_updates + 1):
            if pos + batch_size > num_train:  # new pass over the training rows
                order = torch.randperm(num_train, generator=generator).to(self.device)
                pos = 0
            rows = train_idx[order[pos : pos + batch_size]]
            pos += batch_size
            loss = self._training_loss(real_f[rows], fake_f[rows], generator)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
            if best is not None and step % self.eval_every == 0:
                held = held_out_logloss()
                if held < best[0]:
                    best, checks_since_best = (held, copy.deepcopy(self.net.state_dict())), 0
                else:
                    checks_since_best += 1
                    if checks_since_best >= self.patience:
                        break
        if best is not None:
            self.net.load_state_dict(best[1])

        self.eval()
        return {
            "disc_loss": float(np.mean(losses[-_LOSS_WINDOW:])),
            **self._held_out(held_real, held_fake),
            "disc_updates": float(len(losses)),
            "disc_batch_size": float(batch_size),
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
