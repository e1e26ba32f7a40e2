"""Environment factory and compatibility shims for mbrl 0.2.0 on gymnasium 1.x."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import hydra.utils
import mbrl.env.cartpole_continuous
import mbrl.types
import mbrl.util.env
import numpy as np
import omegaconf
import torch

from mbrl_bound_plugin.errors import UsageError


def box_space(
    low: Sequence[float], high: Sequence[float], shape: Sequence[int] | None = None
) -> gym.spaces.Box:
    """Builds a gymnasium ``Box`` from list bounds (what mbrl's SAC config holds).

    Args:
        low: lower bound per action dimension.
        high: upper bound per action dimension.
        shape: the action shape; checked against the bounds when given.

    Returns:
        The float32 ``Box``.
    """
    low_arr = np.asarray(low, dtype=np.float32)
    high_arr = np.asarray(high, dtype=np.float32)
    if shape is not None and tuple(shape) != low_arr.shape:
        raise ValueError(f"action space shape {tuple(shape)} != bounds shape {low_arr.shape}")
    return gym.spaces.Box(low=low_arr, high=high_arr, dtype=np.float32)


def mountain_car_continuous(act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Termination function of ``MountainCarContinuous-v0`` (mbrl has none).

    The episode ends when the car reaches the flag: position >= 0.45 with
    velocity >= 0 (gymnasium's ``goal_position`` and ``goal_velocity``).

    Args:
        act: batch of actions, shape ``B x 1`` (unused).
        next_obs: batch of next observations ``[position, velocity]``, shape ``B x 2``.

    Returns:
        Boolean tensor of shape ``B x 1``.
    """
    assert next_obs.ndim == 2
    done = (next_obs[:, 0] >= 0.45) & (next_obs[:, 1] >= 0.0)
    return done[:, None]


class CartPoleContinuous(mbrl.env.cartpole_continuous.CartPoleEnv):
    """mbrl's continuous cart-pole, accepting the ``options`` that gymnasium 1.x passes."""

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # noqa: D102
        return super().reset(seed=seed)


def _gym_id(env_name: str) -> str | None:
    return env_name.split("___", 1)[1] if env_name.startswith("gym___") else None


def make_env(
    cfg: omegaconf.DictConfig,
) -> tuple[gym.Env, mbrl.types.TermFnType, mbrl.types.RewardFnType | None]:
    """Creates the environment, termination and reward functions for a run.

    Delegates to mbrl's ``EnvHandler.make_env`` and adds what mbrl 0.2.0 lacks on
    gymnasium 1.x:

    - ``overrides.term_fn`` may be a dotted path to any function (e.g.
      ``mbrl_bound_plugin.envs.mountain_car_continuous``), not only a name in
      ``mbrl.env.termination_fns``;
    - ``cartpole_continuous`` is built with :class:`CartPoleContinuous`;
    - an unknown gymnasium id raises :class:`UsageError` naming it.

    Args:
        cfg: the run's configuration (``cfg.overrides`` and ``cfg.seed`` are read).

    Returns:
        The environment, the termination function and the reward function (``None``
        when rewards are learned).
    """
    overrides = cfg.overrides
    patch: dict[str, Any] = {}
    term_name = overrides.get("term_fn", None)
    if overrides.get("env_cfg", None) is None:
        env_name = overrides.get("env", None)
        if env_name is None:
            raise UsageError("overrides need `env` (e.g. gym___HalfCheetah-v5) or `env_cfg`")
        gym_id = _gym_id(env_name)
        if gym_id is not None and gym_id not in gym.registry:
            raise UsageError(
                f"unknown gymnasium env id {gym_id!r} in overrides.env={env_name!r}; "
                "see gymnasium.registry for valid ids"
            )
        if env_name == "cartpole_continuous":
            patch["env_cfg"] = {"_target_": f"{__name__}.CartPoleContinuous"}
            term_name = term_name or "cartpole"
    elif term_name is None:
        raise UsageError("overrides with `env_cfg` need `term_fn` (e.g. no_termination)")
    custom_term_fn = term_name is not None and "." in term_name
    if custom_term_fn:
        patch["term_fn"] = "no_termination"  # looked up by mbrl, replaced below
    elif term_name is not None:
        patch["term_fn"] = term_name
    if patch:
        cfg = copy.deepcopy(cfg)
        omegaconf.OmegaConf.set_struct(cfg, False)
        cfg.overrides.update(patch)
    env, term_fn, reward_fn = mbrl.util.env.EnvHandler.make_env(cfg)
    if custom_term_fn:
        try:
            term_fn = hydra.utils.get_method(term_name)
        except Exception as e:
            raise UsageError(
                f"overrides.term_fn={term_name!r} is not an importable function"
            ) from e
    return env, term_fn, reward_fn
