"""Environment factory and compatibility shims for mbrl 0.2.0 on gymnasium 1.x.

Importing this module registers this package's own gymnasium environments (the point
maze, ``gym___mbrl_bound/PointMaze-v0``), so that every config naming them can be made.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import hydra.errors
import mbrl.env.cartpole_continuous
import mbrl.env.reward_fns
import mbrl.env.termination_fns
import mbrl.types
import mbrl.util.env
import numpy as np
import omegaconf
import torch
from hydra._internal.utils import _locate

from mbrl_bound_plugin.env import maze
from mbrl_bound_plugin.errors import UsageError, first_line

maze.register()

# The `overrides.env` names mbrl's EnvHandler makes without a gymnasium id.
MBRL_ENV_NAMES = (
    "cartpole_continuous",
    "cartpole_pets_version",
    "pets_halfcheetah",
    "pets_reacher",
    "pets_pusher",
    "ant_truncated_obs",
    "humanoid_truncated_obs",
)
# Prefixes of `overrides.env` that mbrl hands to another suite (they need a term_fn).
MBRL_ENV_PREFIXES = ("gym___", "dmcontrol___", "pybulletgym__")
# The time limit mbrl puts on envs it wraps itself when `overrides.trial_length` is unset.
MBRL_DEFAULT_TRIAL_LENGTH = 1000


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


def _functions(module: Any) -> list[str]:
    """Names of the public functions defined in ``module``."""
    return sorted(
        name
        for name, obj in vars(module).items()
        if inspect.isfunction(obj)
        and not name.startswith("_")
        and obj.__module__ == module.__name__
    )


def _did_you_mean(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _import(path: str, key: str, noun: str, what: str) -> Any:
    """The object at the dotted ``path`` (importing its module), as Hydra's instantiate finds it.

    Raises:
        UsageError: naming ``key``, when nothing can be imported at ``path``.
    """
    try:
        return _locate(path)
    except Exception as e:
        reason = first_line(e.__cause__ if e.__cause__ is not None else e)
        raise UsageError(
            f"{key}={path!r} is not an importable {noun} ({reason}); give the dotted path of {what}"
        ) from e


def _term_fn(name: str) -> Callable:
    """The termination function ``overrides.term_fn`` names (a name in mbrl or a path).

    Raises:
        UsageError: naming the key, when there is no such function.
    """
    if "." in name:
        what = "a termination function (act, next_obs) -> done"
        fn = _import(name, "overrides.term_fn", "function", what)
    else:
        fn = getattr(mbrl.env.termination_fns, name, None)
        if not callable(fn):
            names = _functions(mbrl.env.termination_fns)
            raise UsageError(
                f"overrides.term_fn={name!r} is no function of mbrl.env.termination_fns; "
                f"{_did_you_mean(name, names)}use one of {', '.join(names)}, or the dotted path "
                "of your own (e.g. mbrl_bound_plugin.env.factory.mountain_car_continuous)"
            )
    if not callable(fn):
        raise UsageError(f"overrides.term_fn={name!r} is not a function")
    return fn


def check_env(cfg: omegaconf.DictConfig) -> None:
    """Checks, without making the environment, that :func:`make_env` can make it.

    The environment must be known (a registered gymnasium id, one of mbrl's own names, or
    an importable ``overrides.env_cfg._target_``), and the termination and reward
    functions named in the overrides must exist. Importing a ``_target_`` or a
    termination function's module is the only side effect.

    Args:
        cfg: the run's configuration (``cfg.overrides`` is read).

    Raises:
        UsageError: naming the key to change.
    """
    overrides = cfg.overrides
    env_cfg = overrides.get("env_cfg", None)
    term_name = overrides.get("term_fn", None)
    if env_cfg is None:
        env_name = overrides.get("env", None)
        if env_name is None:
            raise UsageError("overrides need `env` (e.g. gym___HalfCheetah-v5) or `env_cfg`")
        env_name = str(env_name)
        gym_id = _gym_id(env_name)
        if gym_id is not None and gym_id not in gym.registry:
            close = difflib.get_close_matches(gym_id, list(gym.registry), n=1, cutoff=0.8)
            hint = f"did you mean gym___{close[0]}? " if close else ""
            raise UsageError(
                f"unknown gymnasium env id {gym_id!r} in overrides.env={env_name!r}; "
                f"{hint}see gymnasium.registry for valid ids"
            )
        suite = env_name.startswith(MBRL_ENV_PREFIXES)
        if not suite and env_name not in MBRL_ENV_NAMES:
            raise UsageError(
                f"unknown overrides.env={env_name!r}; use gym___<gymnasium id> (e.g. "
                f"gym___HalfCheetah-v5), one of mbrl's {', '.join(MBRL_ENV_NAMES)}, or your own "
                "class with +overrides.env_cfg._target_=my_package.MyEnv"
            )
        if suite and term_name is None:
            raise UsageError(
                f"overrides.env={env_name!r} needs overrides.term_fn (e.g. "
                "+overrides.term_fn=no_termination)"
            )
    else:
        is_node = isinstance(env_cfg, omegaconf.DictConfig)
        target = env_cfg.get("_target_", None) if is_node else None
        if not isinstance(target, str):
            raise UsageError(
                "overrides.env_cfg needs _target_, the dotted path of the environment "
                "(e.g. +overrides.env_cfg._target_=my_package.MyEnv)"
            )
        what = "an environment class or a function that returns one"
        if not callable(_import(target, "overrides.env_cfg._target_", "class", what)):
            raise UsageError(f"overrides.env_cfg._target_={target!r} is not callable; give {what}")
        if term_name is None:
            raise UsageError("overrides with `env_cfg` need `term_fn` (e.g. no_termination)")
    if term_name is not None:
        _term_fn(str(term_name))
    reward_name = overrides.get("reward_fn", None)
    if reward_name is not None and not callable(getattr(mbrl.env.reward_fns, reward_name, None)):
        names = _functions(mbrl.env.reward_fns)
        raise UsageError(
            f"overrides.reward_fn={reward_name!r} is no function of mbrl.env.reward_fns; "
            f"{_did_you_mean(str(reward_name), names)}use one of {', '.join(names)}, or leave "
            "it out (learned_rewards: true learns the reward)"
        )


def episode_limit(cfg: omegaconf.DictConfig) -> int | None:
    """The most steps an episode of the run's environment can last (``None``: unknown).

    mbrl makes ``gym___`` ids with ``gymnasium.make`` (their registered time limit) and
    wraps every other environment in a ``TimeLimit`` of ``overrides.trial_length``
    (1000 when unset).

    Args:
        cfg: the run's configuration (``cfg.overrides`` is read).
    """
    overrides = cfg.overrides
    if overrides.get("env_cfg", None) is None:
        env_name = str(overrides.get("env", ""))
        gym_id = _gym_id(env_name)
        if gym_id is not None:
            return gym.spec(gym_id).max_episode_steps if gym_id in gym.registry else None
        if env_name.startswith(MBRL_ENV_PREFIXES):
            return None
    return overrides.get("trial_length", None) or MBRL_DEFAULT_TRIAL_LENGTH


def make_env(
    cfg: omegaconf.DictConfig,
) -> tuple[gym.Env, mbrl.types.TermFnType, mbrl.types.RewardFnType | None]:
    """Creates the environment, termination and reward functions for a run.

    Delegates to mbrl's ``EnvHandler.make_env`` and adds what mbrl 0.2.0 lacks on
    gymnasium 1.x:

    - ``overrides.term_fn`` may be a dotted path to any function (e.g.
      ``mbrl_bound_plugin.env.factory.mountain_car_continuous``), not only a name in
      ``mbrl.env.termination_fns``;
    - ``cartpole_continuous`` is built with :class:`CartPoleContinuous`;
    - bad input (an unknown gymnasium id or env name, a ``_target_`` or function that
      cannot be found, an env class that refuses its ``env_cfg``) raises
      :class:`UsageError` naming the key (:func:`check_env`).

    Args:
        cfg: the run's configuration (``cfg.overrides`` and ``cfg.seed`` are read).

    Returns:
        The environment, the termination function and the reward function (``None``
        when rewards are learned).
    """
    check_env(cfg)
    overrides = cfg.overrides
    patch: dict[str, Any] = {}
    term_name = overrides.get("term_fn", None)
    has_env_cfg = overrides.get("env_cfg", None) is not None
    if not has_env_cfg and overrides.env == "cartpole_continuous":
        patch["env_cfg"] = {"_target_": f"{__name__}.CartPoleContinuous"}
        term_name = term_name or "cartpole"
    custom_term_fn = term_name is not None and "." in term_name
    if custom_term_fn:
        patch["term_fn"] = "no_termination"  # looked up by mbrl, replaced below
    elif term_name is not None:
        patch["term_fn"] = term_name
    if patch:
        cfg = copy.deepcopy(cfg)
        omegaconf.OmegaConf.set_struct(cfg, False)
        cfg.overrides.update(patch)
    try:
        env, term_fn, reward_fn = mbrl.util.env.EnvHandler.make_env(cfg)
    except hydra.errors.InstantiationException as e:
        if not has_env_cfg:
            raise
        cause = e.__cause__ if e.__cause__ is not None else e
        raise UsageError(
            f"overrides.env_cfg: {overrides.env_cfg._target_} refused its arguments "
            f"({first_line(cause)}); change the keys under overrides.env_cfg"
        ) from e
    if custom_term_fn:
        term_fn = _term_fn(term_name)
    return env, term_fn, reward_fn
