"""The configuration ``mbrl-bound`` runs: composition, device, and the checks made at start.

:func:`compose` is the Python door to exactly what the command would run::

    cfg = mbrl_bound_plugin.compose(["algorithm=bound", "overrides=mbpo_inv_pendulum_v5"])

It composes ``conf/main.yaml`` with this package's and mbrl's config groups (the same
search path as the command), resolves ``device: auto`` and makes the same checks, so a
configuration the command would refuse is refused here with the same :class:`UsageError`.

The checks refuse, in one line naming the key, every value that cannot work: those that
make mbrl's loops hang (``overrides.epoch_length=0``, ``overrides.model_batch_size=0``,
``algorithm.initial_exploration_steps=0``) or crash after minutes of training (a
divisor of zero, a negative buffer size, a rollout batch the elite models cannot split),
a misspelt key (with the closest existing one), and an environment, termination or
reward function that cannot be found. :func:`complete_config` then sizes the replay
buffer for the whole run (``algorithm.dataset_size``), which mbrl sizes too small.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import math
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import hydra
import omegaconf
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Override
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import (
    mbrl_bound_conf_dir,
    mbrl_examples_conf_dir,
)
from mbrl_bound_plugin.errors import UsageError, first_line

# Keys of `overrides` that each algorithm's training code reads directly (the keys it
# reads through interpolations are checked by resolving the config).
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
MAX_CHECKED_JOBS = 256
# Groups whose choice is checked before Hydra composes (unknown choice: UsageError).
CHECKED_GROUPS = ("algorithm", "overrides", "dynamics_model", "action_optimizer", "discriminator")


@contextlib.contextmanager
def quiet_config_warnings() -> Iterator[None]:
    """Silences, inside the block only, two warnings no user of this package can act on.

    mbrl's config files carry the Hydra 1.0 header ``# @package _group_``, which only
    ``version_base="1.1"`` honours; under it Hydra warns about the header on every file
    and about the version base itself.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated keyword in package header.*")
        warnings.filterwarnings("ignore", message=r'(?s).*version_base="1\.1" selects Hydra 1\.1')
        yield


def group_options(group: str) -> list[str]:
    """Names of the configs of ``group`` in this package's and mbrl's config dirs."""
    names: set[str] = set()
    for root in (mbrl_bound_conf_dir(), mbrl_examples_conf_dir()):
        if root is not None and (root / group).is_dir():
            names.update(p.stem for p in (root / group).glob("*.yaml"))
    return sorted(names)


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Parses command-line overrides with Hydra's own grammar.

    Args:
        overrides: ``key=value`` strings, with Hydra's syntax (``+key``, ``~key``,
            quoted values, sweeps such as ``a,b`` and ``choice(a,b)``).

    Returns:
        Hydra's parsed overrides.

    Raises:
        UsageError: an override that Hydra cannot parse.
    """
    parser = OverridesParser.create()
    parsed = []
    for override in overrides:
        try:
            parsed += parser.parse_overrides([override])
        except HydraException as e:
            raise UsageError(f"cannot parse the override {override!r}: {first_line(e)}") from e
    return parsed


def chosen_values(override: Override, options: Iterable[str]) -> list[str]:
    """The values an override selects: one, or each of a sweep (``a,b``, ``choice``, ``glob``).

    Args:
        override: a parsed override.
        options: the values a ``glob(...)`` sweep is matched against.
    """
    if override.is_delete():
        return []
    value = override.value()
    if isinstance(value, Glob):
        return value.filter(list(options))
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    return [str(override.value())]


def check_group_choices(overrides: Sequence[Override]) -> None:
    """Refuses an unknown option of a config group (also inside a sweep).

    Skipped when the overrides extend Hydra's search path (the options are then unknown
    here).

    Raises:
        UsageError: naming the group, the unknown choice and the valid ones.
    """
    if any(o.key_or_group.startswith("hydra.searchpath") for o in overrides):
        return
    for override in overrides:
        group = override.key_or_group
        if group not in CHECKED_GROUPS:
            continue
        options = group_options(group)
        chosen = chosen_values(override, options)
        if not chosen and isinstance(override.value(), Glob):
            raise UsageError(f"{group}={override.input_line.split('=', 1)[1]} matches no option")
        for choice in chosen:
            if choice not in options:
                raise UsageError(f"unknown {group} {choice!r}; choose one of: {', '.join(options)}")


def sweep_jobs(overrides: Sequence[Override]) -> list[list[str]] | None:
    """The overrides of each job of a ``-m`` sweep, as Hydra's basic sweeper makes them.

    Sweeps (``a,b``, ``choice(...)``, ``range(...)``, and ``glob(...)`` over a checked
    config group) are expanded into their cartesian product, in Hydra's order (a key
    given twice keeps its last value). Beyond :data:`MAX_CHECKED_JOBS` jobs, only as
    many jobs as the longest sweep has values are returned, together taking every swept
    value at least once (value ``i`` of each sweep, or its last value).

    Args:
        overrides: the parsed command-line overrides.

    Returns:
        One list of override strings per job, or ``None`` when another sweeper decides
        the jobs (``hydra/sweeper=...``, ``interval(...)``, a ``glob`` over another group).
    """
    values: dict[str, list[str]] = {}
    swept: set[str] = set()
    for override in overrides:
        key = override.get_key_element()
        if override.key_or_group == "hydra/sweeper":
            return None
        if not override.is_sweep_override():
            values[key] = [f"{key}={override.get_value_element_as_str()}"]
            continue
        if isinstance(override.value(), Glob):
            if override.key_or_group not in CHECKED_GROUPS:
                return None
            chosen = chosen_values(override, group_options(override.key_or_group))
        elif override.is_discrete_sweep():
            chosen = list(override.sweep_string_iterator())
        else:
            return None
        values[key] = [f"{key}={value}" for value in chosen]
        swept.add(key)
    lists = list(values.values())
    count = math.prod(len(v) for v in lists)
    if count <= MAX_CHECKED_JOBS:
        return [list(job) for job in itertools.product(*lists)]
    longest = max(len(v) for v in lists)
    return [[v[min(i, len(v) - 1)] for v in lists] for i in range(longest)]


def resolve_device(device: Any) -> str:
    """Turns ``auto`` into ``cuda:0`` or ``cpu``; refuses a device that is not there.

    Args:
        device: the configured device (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Returns:
        A torch device string.

    Raises:
        UsageError: an invalid device string, CUDA requested on a machine without it,
            or a CUDA device index the machine does not have.
    """
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    try:
        if not isinstance(device, str):
            raise TypeError(device)
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise UsageError(f"invalid device={device!r}; use auto, cpu or cuda:N") from e
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"device={device} but CUDA is not available here; use device=cpu or auto"
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise UsageError(
                f"device={device} but this machine has {count} CUDA device(s), cuda:0 to "
                f"cuda:{count - 1}; use one of them, or auto"
            )
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError(f"device={device} but MPS is not available here; use cpu or auto")
    elif parsed.type != "cpu":
        raise UsageError(f"invalid device={device!r}; use auto, cpu or cuda:N")
    return device


# ------------------------------------------------------------------- value checks

_ABSENT = object()
_INTERPOLATION = re.compile(r"\$\{([\w.]+)\}")


def _show(value: Any) -> str:
    """A value as the user would write it on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, omegaconf.DictConfig | omegaconf.ListConfig):
        return str(omegaconf.OmegaConf.to_container(value, resolve=True))
    return str(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def source_key(cfg: omegaconf.DictConfig, key: str) -> str:
    """The key a user sets to change ``key``: interpolations (``${overrides.x}``) followed.

    Args:
        cfg: the composed configuration.
        key: a dotted key, e.g. ``algorithm.initial_exploration_steps``.

    Returns:
        e.g. ``overrides.trial_length`` for PETS' ``algorithm.initial_exploration_steps``.
    """
    seen = set()
    while key not in seen:
        seen.add(key)
        parent_key, _, leaf = key.rpartition(".")
        parent = omegaconf.OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if not isinstance(parent, omegaconf.DictConfig) or leaf not in parent:
            return key
        if not omegaconf.OmegaConf.is_interpolation(parent, leaf):
            return key
        raw = omegaconf.OmegaConf.to_container(parent, resolve=False)[leaf]
        match = _INTERPOLATION.fullmatch(str(raw))
        if match is None:
            return key
        key = match.group(1)
    return key


def _get(cfg: omegaconf.DictConfig, key: str) -> Any:
    return omegaconf.OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)


def _refuse(cfg: omegaconf.DictConfig, key: str, value: Any, use: str, why: str = "") -> None:
    """Raises the one-line error: ``KEY=VALUE: use WHAT (WHY)``."""
    raise UsageError(
        f"{source_key(cfg, key)}={_show(value)}: use {use}" + (f" ({why})" if why else "")
    )


def _integer(
    cfg: omegaconf.DictConfig, key: str, low: int, why: str = "", optional: bool = False
) -> int | None:
    """Refuses ``key`` unless it is an integer ``>= low`` (absent keys pass; ``None`` too if
    ``optional``). Returns the value (``None`` when absent)."""
    value = _get(cfg, key)
    if value is _ABSENT or (value is None and optional):
        return None
    if not _is_int(value) or value < low:
        _refuse(cfg, key, value, f"an integer >= {low}", why)
    return value


def _number(
    cfg: omegaconf.DictConfig, key: str, ok: Callable[[float], bool], use: str, why: str = ""
) -> float | None:
    """Refuses ``key`` unless it is a finite number for which ``ok`` holds (absent passes)."""
    value = _get(cfg, key)
    if value is _ABSENT:
        return None
    if not _is_number(value) or not ok(value):
        _refuse(cfg, key, value, use, why)
    return value


def _check_common(cfg: omegaconf.DictConfig, name: str) -> None:
    seed = cfg.get("seed", None)
    if seed is not None and (not _is_int(seed) or not 0 <= seed < 2**32):
        raise UsageError(
            f"seed={_show(seed)}: use a whole number from 0 to {2**32 - 1}, e.g. seed=0"
        )
    resume = cfg.get("resume", False)
    if not (isinstance(resume, bool) or resume == "auto"):
        raise UsageError(f"resume={_show(resume)}: use true, false or auto")
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
        for key in ("keep", "every_epochs"):
            _integer(cfg, f"checkpoint.{key}", 1)


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
            f"overrides.patience={_show(patience)}: use an integer >= 1, or set "
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
            f"dynamics_model.propagation_method={_show(method)}: use one of {', '.join(methods)}"
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
        if items is None or len(items) != 4 or not all(_is_number(v) for v in items):
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
    if not isinstance(agent.get("ratio_centering", False), bool):
        raise UsageError(
            f"{source_key(cfg, 'algorithm.bound_agent.ratio_centering')}="
            f"{agent.ratio_centering}: use true or false"
        )
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
            overrides, or a value that cannot work.
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
    check_values(cfg)


# ----------------------------------------------------------------- completion


def replay_buffer_capacity(cfg: omegaconf.DictConfig) -> int | None:
    """Transitions a run adds to its replay buffer: what ``algorithm.dataset_size`` defaults to.

    mbrl's ``create_replay_buffer`` makes a buffer of ``overrides.num_steps`` transitions
    when ``algorithm.dataset_size`` is unset, but the runs add more, and overwrite their
    first (exploration) transitions near the end:

    - MBPO (``mbpo``, ``bound``, ``mbpo_resumable``): ``initial_exploration_steps``,
      then whole epochs of ``epoch_length`` steps until ``num_steps`` are reached;
    - PETS: ``initial_exploration_steps`` (``trial_length``), then episodes until
      ``num_steps`` are reached; the last may run past it by up to an episode's
      length minus one (:func:`mbrl_bound_plugin.env.factory.episode_limit`).

    Args:
        cfg: a checked configuration (:func:`check_config`).

    Returns:
        The capacity, or ``None`` for an algorithm that sizes its own buffer (planet).
    """
    name = cfg.algorithm.name
    if name in MBPO_FAMILY:
        epoch = cfg.overrides.epoch_length
        steps = math.ceil(cfg.overrides.num_steps / epoch) * epoch
        return cfg.algorithm.initial_exploration_steps + steps
    if name == "pets":
        from mbrl_bound_plugin.env.factory import episode_limit

        limit = episode_limit(cfg)
        overshoot = limit - 1 if limit else 0
        return cfg.algorithm.initial_exploration_steps + cfg.overrides.num_steps + overshoot
    return None


def complete_config(cfg: omegaconf.DictConfig) -> dict[str, Any]:
    """Fills in, in place, the settings mbrl would choose badly when they are unset.

    ``algorithm.dataset_size`` (the replay buffer's capacity) becomes
    :func:`replay_buffer_capacity`, so that no transition of the run is overwritten; a
    value the user set (not 0 or null, which mbrl reads as unset) is kept. Both the
    command and :func:`compose` call this, after :func:`check_config`.

    Args:
        cfg: a checked configuration.

    Returns:
        The keys filled in and their values (empty when nothing was missing).
    """
    filled: dict[str, Any] = {}
    if not cfg.algorithm.get("dataset_size", None):
        capacity = replay_buffer_capacity(cfg)
        if capacity is not None:
            with omegaconf.open_dict(cfg.algorithm):
                cfg.algorithm.dataset_size = capacity
            filled["algorithm.dataset_size"] = capacity
    return filled


# ------------------------------------------------------------------- composition


def _config_keys(cfg: omegaconf.DictConfig) -> list[str]:
    """Every dotted key of ``cfg`` (nodes too), unresolved."""
    keys = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                keys.append(f"{prefix}{key}")
                walk(value, f"{prefix}{key}.")

    walk(omegaconf.OmegaConf.to_container(cfg, resolve=False), "")
    return keys


def _hydra_compose(overrides: list[str]) -> omegaconf.DictConfig:
    """Hydra's composition of ``main`` (with the ``hydra`` node), on the command's search path."""
    global_hydra = GlobalHydra.instance()
    outer = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()  # (compose inside another Hydra app: put its state back after)
    try:
        with (
            quiet_config_warnings(),
            hydra.initialize_config_dir(
                version_base="1.1", config_dir=str(mbrl_bound_conf_dir()), job_name="mbrl-bound"
            ),
        ):
            return hydra.compose("main", overrides=overrides, return_hydra_config=True)
    finally:
        if outer is not None:
            GlobalHydra.instance().clear()
            GlobalHydra.instance().initialize(outer)


def _explain_override_error(
    error: ConfigCompositionException, overrides: Sequence[Override]
) -> str | None:
    """One line for an override Hydra could not apply to a key, with the closest key.

    Returns:
        The line, or ``None`` when the error is of another kind.
    """
    patterns = {
        "override": r"Could not override '([^']+)'",
        "delete": r"Could not delete from config\. '([^']+)' does not exist",
        "append": r"Could not append to config\. An item is already at '([^']+)'",
    }
    found = [(kind, m) for kind, p in patterns.items() if (m := re.match(p, str(error)))]
    if not found:
        return None
    kind, match = found[0]
    key = match.group(1)
    culprits = [o for o in overrides if o.key_or_group == key]
    line = culprits[-1].input_line if culprits else key
    if kind == "append":
        value = line.split("=", 1)[1] if "=" in line else "VALUE"
        return (
            f"Could not append {line!r}: {key} is already set; write {key}={value} to change "
            f"it (or ++{key}={value})"
        )
    try:  # the keys there are, without the override(s) that failed
        rest = [o.input_line for o in overrides if o.key_or_group != key]
        keys = _config_keys(_hydra_compose(rest))
    except HydraException:
        keys = []
    if not key.startswith("hydra."):
        keys = [k for k in keys if not k.startswith("hydra.") and k != "hydra"]
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.75)
    if kind == "delete":
        hint = f"; did you mean ~{close[0]}?" if close else ""
        return f"Could not delete '{key}': there is no such key{hint}"
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"Could not override '{key}': there is no such key{hint} (+{line} adds it as a new key)"


def compose(overrides: Sequence[str] = ()) -> omegaconf.DictConfig:
    """The configuration ``mbrl-bound OVERRIDES`` would run, for use from Python.

    Composes ``conf/main.yaml`` with the given overrides on the command's search path
    (this package's configs, then mbrl's own ``examples/conf``), resolves ``device:
    auto``, makes the command's checks (:func:`check_config`, and
    :func:`mbrl_bound_plugin.env.factory.check_env` for the environment) and fills in what
    mbrl would choose badly (:func:`complete_config`). The ``hydra`` node is left out.

    Args:
        overrides: Hydra overrides, as on the command line (e.g. ``"algorithm=bound"``,
            ``"overrides=mbpo_inv_pendulum_v5"``, ``"+overrides.trial_length=200"``).
            Sweeps are for the command's ``-m`` mode and are refused here.

    Returns:
        The composed configuration, with ``device`` resolved.

    Raises:
        UsageError: a sweep, an unknown group choice or key (with the closest key), an
            override Hydra refuses, or a configuration the chosen algorithm cannot run.
    """
    from mbrl_bound_plugin.env.factory import check_env

    parsed = parse_overrides(overrides)
    sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
    if sweeps:
        raise UsageError(f"compose() makes one configuration; {sweeps[0]} is a sweep")
    check_group_choices(parsed)
    try:
        cfg = _hydra_compose(list(overrides))
    except HydraException as e:
        explained = (
            _explain_override_error(e, parsed)
            if isinstance(e, ConfigCompositionException)
            else None
        )
        raise UsageError(explained or first_line(e)) from e
    choices = dict(cfg.hydra.runtime.choices)
    with omegaconf.open_dict(cfg):
        del cfg["hydra"]
    cfg.device = resolve_device(cfg.device)
    check_config(cfg, choices)
    check_env(cfg)
    complete_config(cfg)
    return cfg
