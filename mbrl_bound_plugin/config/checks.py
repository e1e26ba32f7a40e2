"""The range checks a run's configuration passes before the run starts.

They refuse, in one line naming the key, every value that cannot work: those that make
mbrl's loops hang (``overrides.epoch_length=0``, ``overrides.model_batch_size=0``,
``algorithm.initial_exploration_steps=0``) or crash after minutes of training (a divisor
of zero, a negative buffer size, a rollout batch the elite models cannot split). The
types of the values are checked first (:mod:`mbrl_bound_plugin.config.value_types`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import omegaconf
from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError

from mbrl_bound_plugin.config.value_types import (
    check_types,
    is_int,
    is_number,
    show,
    source_key,
)
from mbrl_bound_plugin.errors import UsageError, first_line
from mbrl_bound_plugin.util.checkpoint import check_resume, checkpoint_settings

REQUIRED_OVERRIDES: dict[str, tuple[str, ...]] = {
    "mbpo": (
        "num_steps",
        "epoch_length",
        "freq_train_model",
        "effective_model_rollouts_per_step",
        "rollout_schedule",
        "num_sac_updates_per_step",
        "sac_updates_every_steps",
        "num_epochs_to_retain_sac_buffer",
        "sac_batch_size",
        "model_lr",
        "model_wd",
        "model_batch_size",
        "validation_ratio",
    ),
    "pets": (
        "num_steps",
        "model_lr",
        "model_wd",
        "model_batch_size",
        "validation_ratio",
    ),
    "planet": (),
}
# Algorithms run by this package's training loop: they checkpoint and resume. The
# ablations are bound without its model term, and bound without the policy's ratio term.
RESUMABLE = ("bound", "bound_no_model_term", "bound_no_policy_term", "mbpo_resumable")
for _name in RESUMABLE:
    REQUIRED_OVERRIDES[_name] = REQUIRED_OVERRIDES["mbpo"]
# Algorithms with MBPO's loop (mbrl's mbpo.train, or this package's train).
MBPO_FAMILY = ("mbpo", *RESUMABLE)
# Sweeps of more jobs than this are checked one job per swept value (see `sweep_jobs`).


# ------------------------------------------------------------------- value checks

_ABSENT = object()


def _get(cfg: omegaconf.DictConfig, key: str) -> Any:
    return omegaconf.OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)


def _refuse(cfg: omegaconf.DictConfig, key: str, value: Any, use: str, why: str = "") -> None:
    """Raises the one-line error: ``KEY=VALUE: use WHAT (WHY)``."""
    raise UsageError(
        f"{source_key(cfg, key)}={show(value)}: use {use}" + (f" ({why})" if why else "")
    )


def _integer(
    cfg: omegaconf.DictConfig, key: str, low: int, why: str = "", optional: bool = False
) -> int | None:
    """Refuses ``key`` unless it is an integer ``>= low`` (absent keys pass; ``None`` too if
    ``optional``). Returns the value (``None`` when absent)."""
    value = _get(cfg, key)
    if value is _ABSENT or (value is None and optional):
        return None
    if not is_int(value) or value < low:
        _refuse(cfg, key, value, f"an integer >= {low}", why)
    return value


def _number(
    cfg: omegaconf.DictConfig, key: str, ok: Callable[[float], bool], use: str, why: str = ""
) -> float | None:
    """Refuses ``key`` unless it is a finite number for which ``ok`` holds (absent passes)."""
    value = _get(cfg, key)
    if value is _ABSENT:
        return None
    if not is_number(value) or not ok(value):
        _refuse(cfg, key, value, use, why)
    return value


def _check_common(cfg: omegaconf.DictConfig, name: str) -> None:
    seed = cfg.get("seed", None)
    if seed is not None and (not is_int(seed) or not 0 <= seed < 2**32):
        raise UsageError(
            f"seed={show(seed)}: use a whole number from 0 to {2**32 - 1}, e.g. seed=0"
        )
    resume = cfg.get("resume", False)
    check_resume(resume)
    if resume is True and name not in RESUMABLE:
        raise UsageError(
            f"resume=true needs algorithm=bound or mbpo_resumable; mbrl's {name} cannot "
            "continue a run (resume=auto starts it afresh)"
        )
    if "trial_length" in cfg.overrides:
        _integer(
            cfg,
            "overrides.trial_length",
            1,
            "the most steps of an episode; remove it with ~overrides.trial_length",
        )
    if name in RESUMABLE:
        checkpoint_settings(cfg)


def _check_rollout_batch(cfg: omegaconf.DictConfig, batch: int, what: str) -> None:
    """Refuses a model batch that mbrl's GaussianMLP cannot split among its elite models."""
    model = cfg.dynamics_model
    if model.get("_target_", None) != "mbrl.models.GaussianMLP":
        return
    if model.get("propagation_method", None) not in ("random_model", "fixed_model"):
        return
    ensemble = model.get("ensemble_size", 1)
    models = min(cfg.overrides.get("num_elites", None) or ensemble, ensemble)
    if models > 1 and batch % models:
        raise UsageError(
            f"{what} = {batch}: use a multiple of the {models} elite models it is split among "
            f"(overrides.num_elites, at most dynamics_model.ensemble_size={ensemble}), or change "
            "overrides.num_elites (mbrl's GaussianMLP refuses other batch sizes)"
        )


def _check_model_training(cfg: omegaconf.DictConfig) -> None:
    """The keys of mbrl's model training (MBPO, bound and PETS)."""
    _integer(cfg, "overrides.model_batch_size", 1, "with 0, mbrl's model training never ends")
    _number(
        cfg,
        "overrides.validation_ratio",
        lambda v: 0 <= v < 1,
        "a number in [0, 1)",
        "the fraction of transitions held out of model training; at 1 the model learns nothing",
    )
    for key, what in (("model_lr", "learning rate"), ("model_wd", "weight decay")):
        _number(
            cfg,
            f"overrides.{key}",
            lambda v: v >= 0,
            "a number >= 0",
            f"torch's Adam refuses a negative {what}",
        )
    ensemble = _integer(cfg, "dynamics_model.ensemble_size", 1, "models in the ensemble")
    elites = _integer(
        cfg, "overrides.num_elites", 0, "the best models of the ensemble; 0: all", optional=True
    )
    if elites and ensemble and elites > ensemble:
        raise UsageError(
            f"overrides.num_elites={elites}: use at most dynamics_model.ensemble_size={ensemble} "
            "(elites are chosen among the models of the ensemble)"
        )
    epochs = _integer(
        cfg,
        "overrides.num_epochs_train_model",
        0,
        "model training epochs; 0 or unset: until overrides.patience epochs bring no gain",
        optional=True,
    )
    patience = _integer(
        cfg, "overrides.patience", 0, "epochs without a gain before model training stops", True
    )
    if not epochs and "patience" in cfg.overrides and not patience:
        add = "" if "num_epochs_train_model" in cfg.overrides else "+"
        raise UsageError(
            f"overrides.patience={show(patience)}: use an integer >= 1, or set "
            f"{add}overrides.num_epochs_train_model=N (with neither, mbrl's model training "
            "never stops)"
        )
    _integer(
        cfg,
        "algorithm.dataset_size",
        0,
        "the replay buffer's capacity; 0 or unset: every transition of the run",
        optional=True,
    )
    method = cfg.dynamics_model.get("propagation_method", None)
    methods = ("random_model", "fixed_model", "expectation")
    if method is not None and method not in methods:
        raise UsageError(
            f"dynamics_model.propagation_method={show(method)}: use one of {', '.join(methods)}"
        )


def _check_mbpo(cfg: omegaconf.DictConfig) -> None:
    """The keys of MBPO's loop (mbrl's mbpo.train and this package's train)."""
    _integer(cfg, "overrides.num_steps", 1, "the run's budget of environment steps")
    _integer(
        cfg,
        "overrides.epoch_length",
        1,
        "environment steps per epoch; with 0, mbrl's epoch loop never advances and the run hangs",
    )
    for key in ("overrides.freq_train_model", "algorithm.freq_train_model"):
        _integer(cfg, key, 1, "environment steps between model trainings")
    _integer(cfg, "overrides.effective_model_rollouts_per_step", 1, "model rollouts per step")
    schedule = _get(cfg, "overrides.rollout_schedule")
    if schedule is not _ABSENT:
        items = list(schedule) if isinstance(schedule, omegaconf.ListConfig | list) else None
        use = "4 numbers [first epoch, last epoch, first length, last length], e.g. [1, 15, 1, 1]"
        if items is None or len(items) != 4 or not all(is_number(v) for v in items):
            _refuse(cfg, "overrides.rollout_schedule", schedule, use)
        if items[2] < 0 or items[3] < 0:
            _refuse(cfg, "overrides.rollout_schedule", schedule, use, "lengths are >= 0")
    _integer(cfg, "overrides.num_sac_updates_per_step", 0, "SAC updates per step; 0: none")
    _integer(cfg, "overrides.sac_updates_every_steps", 1, "environment steps between SAC updates")
    _integer(
        cfg,
        "overrides.num_epochs_to_retain_sac_buffer",
        1,
        "epochs of model rollouts SAC's buffer holds; at 0 it holds none",
    )
    _integer(cfg, "overrides.sac_batch_size", 1, "an empty SAC batch gives NaN losses")
    _integer(
        cfg,
        "algorithm.initial_exploration_steps",
        1,
        "steps explored before training; below 1, mbrl's exploration never ends and the run hangs",
    )
    _number(
        cfg,
        "algorithm.real_data_ratio",
        lambda v: 0 <= v <= 1,
        "a number in [0, 1]",
        "the fraction of SAC batches drawn from real transitions",
    )
    _integer(cfg, "algorithm.num_eval_episodes", 1, "evaluation episodes per epoch")
    _integer(cfg, "log_frequency_agent", 1, "SAC updates between log lines")
    # (mbrl's rollout batch: effective_model_rollouts_per_step x algorithm.freq_train_model)
    rollouts, every = "overrides.effective_model_rollouts_per_step", "algorithm.freq_train_model"
    _check_rollout_batch(
        cfg,
        _get(cfg, rollouts) * _get(cfg, every),
        f"{rollouts}={_get(cfg, rollouts)} x {source_key(cfg, every)}={_get(cfg, every)} "
        "model rollouts per training",
    )


def _check_pets(cfg: omegaconf.DictConfig) -> None:
    """The keys of mbrl's pets.train and its trajectory optimizer."""
    _integer(cfg, "overrides.num_steps", 1, "the run's budget of environment steps")
    _integer(
        cfg,
        "algorithm.initial_exploration_steps",
        1,
        "PETS first explores this many steps; below 1, mbrl's exploration never ends",
    )
    _integer(cfg, "algorithm.freq_train_model", 1, "environment steps between model trainings")
    _integer(cfg, "algorithm.agent.planning_horizon", 1, "steps the planner looks ahead")
    particles = _integer(cfg, "algorithm.num_particles", 1, "model samples per action sequence")
    optimizer = "algorithm.agent.optimizer_cfg"
    population = _integer(
        cfg, f"{optimizer}.population_size", 1, "action sequences the planner scores"
    )
    ratio = _number(
        cfg,
        f"{optimizer}.elite_ratio",
        lambda v: 0 < v <= 1,
        "a number in (0, 1]",
        "the fraction of action sequences kept as elites",
    )
    if ratio is not None and population is not None and int(ratio * population) < 1:
        _refuse(
            cfg,
            f"{optimizer}.elite_ratio",
            ratio,
            f"at least 1/{population}",
            f"it keeps int(elite_ratio x population_size={population}) = 0 elites",
        )
    target = _get(cfg, f"{optimizer}._target_")
    if (
        population
        and particles
        and target in ("mbrl.planning.CEMOptimizer", "mbrl.planning.MPPIOptimizer")
    ):
        _check_rollout_batch(
            cfg,
            population * particles,
            f"{source_key(cfg, f'{optimizer}.population_size')}={population} x "
            f"{source_key(cfg, 'algorithm.num_particles')}={particles} model samples per plan",
        )


def _check_bound(cfg: omegaconf.DictConfig) -> None:
    """The bound's own settings (``algorithm=bound`` and ``mbpo_resumable``).

    The checks the bound's classes make when a run builds them, for the model step
    (:func:`mbrl_bound_plugin.objective.check_model_settings`), the augmented reward
    (:func:`mbrl_bound_plugin.objective.check_reward_settings`) and the discriminator
    (:func:`mbrl_bound_plugin.models.discriminator.check_settings`), made on the config alone.
    ``reward_floor`` against the task's rewards is checked when the run has explored.
    """
    from mbrl_bound_plugin import objective

    wrapper = cfg.algorithm.model_wrapper
    try:
        objective.check_model_settings(
            wrapper.get("beta", 0.0),
            wrapper.get("bound_batch_size"),
            wrapper.get("clamp_value", False),
        )
    except ValueError as e:
        raise UsageError(f"algorithm.model_wrapper: {first_line(e)}") from e
    agent = cfg.algorithm.bound_agent
    try:
        objective.check_reward_settings(
            agent.get("mode", "scaled"),
            agent.get("gamma", 0.99),
            agent.get("lam", 0.1),
            agent.get("clip", 10.0),
            agent.get("reward_floor", None),
            agent.get("scale", "none"),
            agent.get("warmup_epochs", 0),
        )
    except (TypeError, ValueError) as e:
        raise UsageError(f"algorithm.bound_agent: {first_line(e)}") from e
    if not isinstance(agent.get("policy_ratio", True), bool):
        raise UsageError(
            f"{source_key(cfg, 'algorithm.bound_agent.policy_ratio')}="
            f"{agent.policy_ratio}: use true or false"
        )
    _integer(cfg, "algorithm.disc_max_rows", 1, "replay-buffer rows per discriminator step")
    _check_optimism(cfg)
    _check_discriminator(cfg)


def _check_optimism(cfg: omegaconf.DictConfig) -> None:
    """``algorithm.optimism.*`` (:func:`mbrl_bound_plugin.kl_budget.check_optimism_settings`).

    Whether the model has a variance to spend a budget in is checked when the run builds it.
    """
    node = cfg.algorithm.get("optimism")
    if node is None:
        return
    from mbrl_bound_plugin import kl_budget

    try:
        kl_budget.check_optimism_settings(
            node.get("method", "none"), node.get("kl_budget", 0.0), node.get("num_samples", 16)
        )
    except ValueError as e:
        raise UsageError(f"algorithm.optimism: {first_line(e)}") from e


def _check_discriminator(cfg: omegaconf.DictConfig) -> None:
    """``discriminator.*`` (:func:`mbrl_bound_plugin.models.discriminator.check_settings`).

    The sizes come from the environment and the device is checked with the run's own, so
    neither is checked here.
    """
    node = cfg.get("discriminator")
    if node is None:
        return
    from mbrl_bound_plugin.models.discriminator import check_settings

    settings = {
        key: node[key]
        for key in node
        if key not in ("_target_", "obs_dim", "act_dim", "device")
        and not omegaconf.OmegaConf.is_missing(node, key)
    }
    try:
        check_settings(**settings)
    except ValueError as e:
        raise UsageError(first_line(e)) from e


def check_values(cfg: omegaconf.DictConfig) -> None:
    """Refuses the values of ``cfg`` that the chosen algorithm cannot run with.

    Only what cannot work is refused: values that make mbrl's loops hang or fail
    (zero or negative counts and sizes, ratios outside their range, a model batch the
    elite models cannot split, a misshapen rollout schedule), not unusual but working
    choices (``num_sac_updates_per_step=0``, ``real_data_ratio=1``, ``num_elites=0``
    for all models).

    Args:
        cfg: the composed configuration, its required keys present (:func:`check_config`).

    Raises:
        UsageError: ``KEY=VALUE: use ...``, naming the key to change.
    """
    name = cfg.algorithm.name
    _check_common(cfg, name)
    if name in (*MBPO_FAMILY, "pets"):
        _check_model_training(cfg)
    if name in MBPO_FAMILY:
        _check_mbpo(cfg)
    if name == "pets":
        _check_pets(cfg)
    if name in RESUMABLE:
        _check_bound(cfg)


def check_config(
    cfg: omegaconf.DictConfig, choices: Mapping[str, str | None] | None = None
) -> None:
    """Checks that the composed config has what ``cfg.algorithm.name`` needs, with values
    it can run with (:func:`check_values`).

    Args:
        cfg: the composed configuration.
        choices: the config-group choices (Hydra's ``hydra.runtime.choices``), used to
            name the overrides file in messages.

    Raises:
        UsageError: unknown algorithm name, an invalid ``resume`` (``resume=true`` for
            an algorithm that cannot resume), a key the algorithm reads missing from the
            overrides, a value of the wrong type
            (:func:`mbrl_bound_plugin.config.value_types.check_types`, when ``choices``
            are given), or a value that cannot work.
    """
    name = cfg.algorithm.get("name", None)
    if name not in REQUIRED_OVERRIDES:
        raise UsageError(
            f"unknown algorithm.name {name!r}; choose one of: {', '.join(REQUIRED_OVERRIDES)}"
        )
    choice = (choices or {}).get("overrides") or "?"
    for key in REQUIRED_OVERRIDES[name]:
        if key not in cfg.overrides:
            raise UsageError(f"overrides={choice} lacks key {key!r}, needed by algorithm={name}")
    sections = ["algorithm", "dynamics_model", "overrides"]
    sections += ["discriminator"] if name in RESUMABLE else []
    try:
        for section in sections:  # (action_optimizer is resolved through algorithm.agent)
            omegaconf.OmegaConf.to_container(cfg[section], resolve=True, throw_on_missing=False)
    except (InterpolationKeyError, InterpolationResolutionError) as e:
        raise UsageError(
            f"overrides={choice} cannot serve algorithm={name}: {first_line(e)} (at {e.full_key})"
        ) from e
    if choices is not None:
        check_types(cfg, choices)
    check_values(cfg)
