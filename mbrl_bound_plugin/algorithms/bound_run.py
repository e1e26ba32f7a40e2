"""The run as one object: what ``algorithm=bound`` builds, owns, counts and saves.

:class:`BoundRun` holds what mbrl's ``mbpo.train`` keeps in local variables: the agent,
the model and its trainer, the model environment, the replay buffer and SAC's rollout
buffer, the logger and the random generators, plus what the bound adds (the
discriminator, its statistics) and the counters. The training loop,
:func:`mbrl_bound_plugin.algorithms.bound.train`, reads and advances it; a checkpoint is
``run.state_dict()`` (PyTorch's convention), and a resumed run is a fresh ``BoundRun``
given that state with :meth:`BoundRun.load_state_dict`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

import gymnasium as gym
import hydra.errors
import hydra.utils
import mbrl.algorithms.mbpo as mbpo
import mbrl.constants
import mbrl.models
import mbrl.planning
import mbrl.types
import mbrl.util
import mbrl.util.common
import numpy as np
import omegaconf
import torch
import tqdm
from mbrl.third_party.pytorch_sac import VideoRecorder

from mbrl_bound_plugin.errors import NumericalError, UsageError
from mbrl_bound_plugin.models.discriminator import Discriminator
from mbrl_bound_plugin.models.model_wrapper import BoundTransitionRewardModel
from mbrl_bound_plugin.models.optimism import BudgetedOptimism
from mbrl_bound_plugin.planning.sac_agent import BoundSACAgent
from mbrl_bound_plugin.util import state as run_state
from mbrl_bound_plugin.util.console import ConsoleLogger

# the discriminator step's diagnostics, as logged in results.csv (held-out rows)
DISC_STATS = (
    "disc_accuracy",
    "kl_estimate",
    "disc_logloss",
    "exp_logit_model",
    "exp_neglogit_real",
)
BOUND_LOG_FORMAT = mbpo.MBPO_LOG_FORMAT + [
    ("disc_accuracy", "DACC", "float"),
    ("kl_estimate", "KL", "float"),
    ("disc_logloss", "DLL", "float"),
    ("exp_logit_model", "EQ", "float"),
    ("exp_neglogit_real", "EP", "float"),
    ("bound_reward", "BR", "float"),
    ("exp_logit_rollout", "EQR", "float"),
]
OPTIMISM_LOG_FORMAT = [
    ("optimism_kl", "OKL", "float"),
    ("optimism_eta", "OETA", "float"),
    ("optimism_value_gain", "OVG", "float"),
]
MODEL_BOUND_LOG_FORMAT = [
    ("model_nll", "NLL", "float"),
    ("bound_term", "BT", "float"),
    ("bound_logit", "BL", "float"),
    ("bound_value", "BV", "float"),
    ("bound_value_clamped", "BVC", "float"),
]
log = logging.getLogger(__name__)


class _ModelTrainLog:
    """Logger view for mbrl's ``ModelTrainer``: adds the bound term beside the NLL.

    ``model_train.csv`` gets the columns ``model_nll``, ``bound_term``, ``bound_logit``,
    ``bound_value`` and ``bound_value_clamped`` (means over the epoch's updates) next to
    mbrl's ``model_loss``; the bound's columns are empty (NaN) where no bound term was
    computed (``beta == 0``, as with ``optimism.method`` set, or no discriminator yet).
    """

    def __init__(self, logger: mbrl.util.Logger, model: BoundTransitionRewardModel):
        self.logger = logger
        self.model = model

    def register_group(self, group_name: str, log_format: list, **kwargs: Any) -> None:
        self.logger.register_group(group_name, log_format + MODEL_BOUND_LOG_FORMAT, **kwargs)

    def log_data(self, group_name: str, data: Mapping[str, Any]) -> None:
        stats = {k: math.nan for k, *_ in MODEL_BOUND_LOG_FORMAT} | self.model.pop_bound_stats()
        self.logger.log_data(group_name, {**data, **stats})


def instantiate(node: omegaconf.DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` whose ValueErrors become a :class:`UsageError` naming ``key``."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except ValueError as e:
        raise UsageError(f"{key}: {e}") from e
    except hydra.errors.InstantiationException as e:
        if isinstance(e.__cause__, ValueError):
            raise UsageError(f"{key}: {e.__cause__}") from e
        raise


def create_bound_model(
    cfg: omegaconf.DictConfig, obs_shape: tuple[int, ...], act_shape: tuple[int, ...]
) -> BoundTransitionRewardModel:
    """mbrl's 1-D transition-reward model, re-wrapped as the bound's model wrapper.

    The ensemble is made by ``mbrl.util.common.create_one_dim_tr_model`` (same
    construction and random draws as MBPO); ``cfg.algorithm.model_wrapper`` then
    wraps it with the same wrapper options. ``overrides.model_min_logvar``, if set,
    replaces the ensemble's floor on ``log sigma^2`` (mbrl's is -10).

    Args:
        cfg: the run's configuration.
        obs_shape: observation shape.
        act_shape: action shape.

    Returns:
        The wrapped model.
    """
    tilt = create_optimism(cfg)
    base = mbrl.util.common.create_one_dim_tr_model(cfg, obs_shape, act_shape)
    floor = cfg.overrides.get("model_min_logvar")
    if floor is not None:  # a task whose real changes vary less than mbrl's sigma floor
        min_logvar = getattr(base.model, "min_logvar", None)
        if min_logvar is None:
            raise UsageError(
                "overrides.model_min_logvar needs a GaussianMLP ensemble "
                "(dynamics_model=gaussian_mlp_ensemble); remove it for this model"
            )
        with torch.no_grad():
            min_logvar.fill_(float(floor))
    if tilt.tilts and getattr(base.model, "deterministic", False):
        raise UsageError(
            f"algorithm.optimism.kl_budget={tilt.kl_budget} needs a model with a variance, "
            "and this ensemble is deterministic; set algorithm.optimism.kl_budget=0 or "
            "dynamics_model.deterministic=false"
        )
    wrapper_kwargs = {}
    if tilt.method != "none":  # the optimism replaces the model term: NLL-only training
        wrapper_kwargs["beta"] = 0.0
        if cfg.algorithm.model_wrapper.get("beta", 0.0) > 0:
            log.info(
                "algorithm.optimism.method=%s: the model is trained by NLL alone, as in "
                "MBPO (algorithm.model_wrapper.beta=%s is not used)",
                tilt.method,
                cfg.algorithm.model_wrapper.beta,
            )
    model = instantiate(
        cfg.algorithm.model_wrapper,
        "algorithm.model_wrapper",
        **wrapper_kwargs,
        model=base.model,
        target_is_delta=base.target_is_delta,
        normalize=base.input_normalizer is not None,
        normalize_double_precision=cfg.algorithm.get("normalize_double_precision", False),
        learned_rewards=base.learned_rewards,
        obs_process_fn=base.obs_process_fn,
        no_delta_list=base.no_delta_list,
        num_elites=base.num_elites,
    )
    model.set_optimism(tilt if tilt.method != "none" else None)
    return model


def create_optimism(cfg: omegaconf.DictConfig) -> BudgetedOptimism:
    """The model's budgeted optimism from ``cfg.algorithm.optimism`` (absent: none).

    Raises:
        UsageError: invalid settings, naming the key.
    """
    node = cfg.algorithm.get("optimism") or {}
    try:
        return BudgetedOptimism(
            method=node.get("method", "none"),
            kl_budget=node.get("kl_budget", 0.0),
            num_samples=node.get("num_samples", 16),
        )
    except ValueError as e:
        raise UsageError(f"algorithm.optimism: {e}") from e


class BoundRun:
    """Everything an ``algorithm=bound`` run owns, built as ``mbpo.train`` builds it.

    The components are built in the order of mbrl's ``mbpo.train`` (so the same seed
    draws the same numbers); :meth:`explore` then fills the replay buffer, unless a
    checkpoint is loaded instead.

    Args:
        env: the environment to train in.
        test_env: a copy of the environment for evaluation.
        termination_fn: the termination function used in model rollouts.
        cfg: the configuration (``algorithm=bound``, MBPO ``overrides``, ``discriminator``),
            with ``device`` resolved.
        work_dir: where logs, model, buffer and SAC weights go (created if missing;
            default: the cwd).
        silent: if ``True``, no console log and no model-training log.

    Attributes:
        env_steps: environment steps taken in the training loop (exploration excluded).
        epoch: epochs completed.
        updates_made: SAC updates made.
        best_eval_reward: the best evaluation return so far.
        bound_terms: whether either bound term is on (``beta > 0``, or SAC's reward is not
            ``r``); if not, the run is MBPO (``algorithm=mbpo_resumable``): no
            discriminator (``discriminator`` is ``None``) and mbrl's log columns.
        disc_stats: the last discriminator step's diagnostics (:data:`DISC_STATS`).
        discriminator_ready: whether a discriminator step has run.

    Raises:
        UsageError: invalid component settings (named by their config key).
    """

    def __init__(
        self,
        env: gym.Env,
        test_env: gym.Env,
        termination_fn: mbrl.types.TermFnType,
        cfg: omegaconf.DictConfig,
        work_dir: str | None = None,
        silent: bool = False,
    ):
        self.cfg, self.env, self.test_env = cfg, env, test_env
        self.work_dir = work_dir or os.getcwd()
        self.silent = silent
        self.obs_shape = obs_shape = env.observation_space.shape
        self.act_shape = act_shape = env.action_space.shape
        mbrl.planning.complete_agent_cfg(env, cfg.algorithm.agent)
        self.agent: BoundSACAgent = instantiate(
            cfg.algorithm.bound_agent,
            "algorithm.bound_agent",
            sac_agent=hydra.utils.instantiate(cfg.algorithm.agent),
        )
        pathlib.Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        # (mbrl's Logger; on the console only the results line, unless cfg.verbose)
        self.logger = ConsoleLogger(
            self.work_dir, enable_back_compatible=True, verbose=bool(cfg.get("verbose", False))
        )
        self.video_recorder = VideoRecorder(self.work_dir if cfg.get("save_video") else None)

        self.rng = np.random.default_rng(seed=cfg.seed)  # (also the replay buffer's)
        self.torch_generator = torch.Generator(device=cfg.device)  # model rollouts
        self.disc_generator = torch.Generator()  # CPU: the discriminator's split and batches
        if cfg.seed is not None:
            self.torch_generator.manual_seed(cfg.seed)
            self.disc_generator.manual_seed(cfg.seed + 1)
        self.random_streams = run_state.RandomStreams(
            {"rng": self.rng},
            {"model_env": self.torch_generator, "discriminator": self.disc_generator},
            {"env": env, "test_env": test_env},
        )

        self.dynamics_model = create_bound_model(cfg, obs_shape, act_shape)
        # Both bound terms off (beta = 0, and SAC's reward is r): MBPO itself. No
        # discriminator is built or fitted, and the logs have mbrl's columns.
        self.bound_terms = self.dynamics_model.beta > 0 or self.agent.changes_reward
        self.discriminator: Discriminator | None = None
        if self.bound_terms:
            self.discriminator = self._build_discriminator()
        # the model's budgeted optimism (rollout time): V from SAC's target critic
        self.optimism = self.dynamics_model.optimism
        if self.optimism is not None:
            self.optimism.set_value(self.agent.target_value, self.agent.gamma, termination_fn)
        log_format = BOUND_LOG_FORMAT if self.bound_terms else mbpo.MBPO_LOG_FORMAT
        if self.optimism is not None and self.optimism.tilts:
            log_format = log_format + OPTIMISM_LOG_FORMAT
        self.logger.register_group(
            mbrl.constants.RESULTS_LOG_NAME,
            log_format,
            color="green",
            dump_frequency=1,
        )
        dtype = np.double if cfg.algorithm.get("normalize_double_precision", False) else np.float32
        self.replay_buffer = mbrl.util.common.create_replay_buffer(
            cfg, obs_shape, act_shape, rng=self.rng, obs_type=dtype, action_type=dtype,
            reward_type=dtype,
        )  # fmt: skip
        self.model_env = mbrl.models.ModelEnv(
            env, self.dynamics_model, termination_fn, None, generator=self.torch_generator
        )
        self.model_trainer = mbrl.models.ModelTrainer(
            self.dynamics_model,
            optim_lr=cfg.overrides.model_lr,
            weight_decay=cfg.overrides.model_wd,
            logger=None
            if silent
            else _ModelTrainLog(self.logger, self.dynamics_model)
            if self.bound_terms
            else self.logger,
        )
        # SAC's rollouts; a ScoredReplayBuffer when SAC's reward has the ratio term
        self.sac_buffer: mbrl.util.ReplayBuffer | None = None

        self.env_steps = 0
        self.epoch = 0
        self.updates_made = 0
        self.best_eval_reward = -np.inf
        self.disc_stats = dict.fromkeys(DISC_STATS, math.nan)
        self.discriminator_ready = False
        self._said_small_batch = False

    def _build_discriminator(self) -> Discriminator:
        """The discriminator, initialized from its own seed (``seed + 2``).

        torch's global generator is left as it was, so that a run with the bound terms
        draws the same SAC actions, hence the same exploration data, as MBPO with the
        same seed: the paired comparison of the two starts from the same transitions.
        """
        cfg = self.cfg
        device = torch.device(cfg.device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if cfg.seed is not None:
                torch.manual_seed(cfg.seed + 2)
            return instantiate(
                cfg.discriminator,
                "discriminator",
                obs_dim=self.obs_shape[0],
                act_dim=self.act_shape[0],
            )

    def explore(self) -> None:
        """MBPO's initial exploration into the replay buffer (random actions by default).

        Raises:
            UsageError: in mode ``bound``, a reward at or below ``reward_floor``.
        """
        random_explore = self.cfg.algorithm.random_initial_explore
        mbrl.util.common.rollout_agent_trajectories(
            self.env,
            self.cfg.algorithm.initial_exploration_steps,
            mbrl.planning.RandomAgent(self.env) if random_explore else self.agent,
            {} if random_explore else {"sample": True, "batched": False},
            replay_buffer=self.replay_buffer,
        )
        data = self.replay_buffer.get_all()
        try:
            self.agent.check_real_rewards(data.rewards)
        except ValueError as e:
            raise UsageError(f"algorithm.bound_agent: {e}") from e
        self._check_variance_floor(data)

    def _check_variance_floor(self, data: mbrl.types.TransitionBatch) -> None:
        """Says in the log when the model's variance floor is above the real changes' spread.

        mbrl's Gaussian ensemble keeps ``log sigma^2 >= min_logvar`` (-10 by default). On a
        dimension whose real next-state changes vary less than that ``sigma``, every
        model sample is told from the real ones at once, and the ratio term is about the
        floor, not the model.
        """
        min_logvar = getattr(self.dynamics_model.model, "min_logvar", None)
        if min_logvar is None or len(data) < 2 or not self.dynamics_model.target_is_delta:
            return
        floor = torch.exp(0.5 * min_logvar.detach().cpu().double()).reshape(-1)
        spread = np.std(data.next_obs - data.obs, axis=0)
        low = [i for i in range(min(len(spread), floor.numel())) if floor[i] > spread[i] > 0]
        if low:
            log.warning(
                "the model's variance floor (sigma >= %.3g) is above the spread of the real "
                "next-state changes in dimension(s) %s (std %s): model samples will be told "
                "from real ones whatever the model learns (docs/algorithm.md, the model's "
                "variance floor; overrides.model_min_logvar sets the floor, e.g. %d)",
                floor[low[0]].item(),
                low,
                ", ".join(f"{spread[i]:.3g}" for i in low),
                math.floor(2 * math.log(min(spread[i] for i in low))) - 2,
            )

    def check_real_reward(self, reward: float) -> None:
        """Refuses a non-finite reward, or one below ``reward_floor`` in mode ``bound``.

        Raises:
            NumericalError: a NaN or inf reward.
            UsageError: a reward at or below the floor (the run can continue from its
                last checkpoint once the floor is fixed).
        """
        if not math.isfinite(reward):
            raise NumericalError(f"environment reward is {reward}")
        try:
            self.agent.check_real_rewards(reward)
        except ValueError as e:  # a reward_floor that held during exploration only
            raise UsageError(
                f"algorithm.bound_agent: {e} (environment step {self.env_steps}); fix it "
                f"and continue from the last checkpoint with resume=true in {self.work_dir}"
            ) from e

    def check_model_loss(self, _model: Any, _iteration: int, _epoch: int, loss: float, *_: Any):
        """``ModelTrainer`` callback: refuses a non-finite model training loss."""
        if not math.isfinite(loss):
            raise NumericalError(f"model loss is {loss}")

    def use_discriminator(self, stats: Mapping[str, float]) -> None:
        """After a discriminator step: record its statistics and hand it to both players.

        From here on, every SAC batch and the next model step use this discriminator; the
        rows of the ``ScoredReplayBuffer`` SAC trains on are marked stale, to be scored by
        it again (:meth:`BoundSACAgent.set_discriminator`).

        Raises:
            NumericalError: a non-finite discriminator loss.
        """
        if not math.isfinite(stats["disc_loss"]):
            raise NumericalError(f"discriminator loss is {stats['disc_loss']}")
        self.disc_stats = {k: stats[k] for k in DISC_STATS}
        self.discriminator_ready = True
        if stats["disc_batch_size"] < self.discriminator.batch_size and not self._said_small_batch:
            self._said_small_batch = True
            log.info(
                "discriminator.batch_size=%d is more than the %d training rows: each "
                "discriminator update uses all of them until there are more",
                self.discriminator.batch_size,
                int(stats["disc_batch_size"]),
            )
        self._hand_discriminator_to_players()

    def pop_rollout_stats(self) -> dict[str, float]:
        """The rollouts' diagnostics since the last call, for the epoch's ``results.csv`` row.

        With the bound terms, ``exp_logit_rollout`` (the discriminator's calibration on
        the rollouts SAC trained on, :meth:`BoundSACAgent.pop_rollout_calibration`); when
        the model's samples are tilted, the budgeted optimism's
        (``models.optimism.OPTIMISM_STATS``). ``{}`` for MBPO.
        """
        stats = {}
        if self.bound_terms:
            stats["exp_logit_rollout"] = self.agent.pop_rollout_calibration()
        if self.optimism is not None and self.optimism.tilts:
            stats |= self.optimism.pop_stats()
        return stats

    def scored_sac_buffer(
        self, buffer: mbrl.util.ReplayBuffer | None
    ) -> mbrl.util.ReplayBuffer | None:
        """SAC's buffer as this run keeps it, from what mbrl's ``maybe_replace_sac_buffer`` gave.

        The agent's :meth:`BoundSACAgent.scored_buffer`: with the ratio term in SAC's
        reward, a ``ScoredReplayBuffer`` of the same rows, scored by the current
        discriminator; otherwise ``buffer`` as it is.

        Args:
            buffer: SAC's buffer, or ``None``.

        Returns:
            The buffer to train SAC on.
        """
        return self.agent.scored_buffer(buffer)

    def _hand_discriminator_to_players(self) -> None:
        self.agent.set_discriminator(self.discriminator, self.sac_buffer)
        self.dynamics_model.set_bound_critics(
            self.discriminator,
            self.agent.value,
            self.agent.gamma,
            frozen=(self.agent.sac_agent.policy, self.agent.sac_agent.critic),
            ratio_fn=self.agent.ratio_term,
            termination_fn=self.model_env.termination_fn,
        )

    def progress_bar(self) -> tqdm.tqdm:
        """The training loop's progress bar over ``overrides.num_steps`` (off when silent).

        It starts at :attr:`env_steps`, so that a resumed run shows the steps already done.
        """
        return tqdm.tqdm(
            total=self.cfg.overrides.num_steps,
            initial=min(self.env_steps, self.cfg.overrides.num_steps),
            desc=str(self.cfg.algorithm.name),
            unit="step",
            disable=self.silent,
            leave=False,
        )

    def bound_stats(self) -> dict[str, float]:
        """At an epoch's end: what ``results.csv`` gets beside mbrl's MBPO columns.

        The last discriminator step's diagnostics (:data:`DISC_STATS`) and ``bound_reward``,
        the mean augmented reward of SAC's batches since the last call, when the run has
        the bound terms (not ``algorithm=mbpo_resumable``); then the rollouts' own
        (:meth:`pop_rollout_stats`).
        """
        bound_reward = self.agent.pop_bound_reward()  # (reset every epoch, used or not)
        stats = {**self.disc_stats, "bound_reward": bound_reward} if self.bound_terms else {}
        return stats | self.pop_rollout_stats()

    def progress_postfix(self, avg_reward: float) -> dict[str, str]:
        """What the progress bar shows after an epoch: the evaluation return, C's accuracy."""
        postfix = {"eval_return": f"{avg_reward:.1f}"}
        if self.bound_terms:
            postfix["disc_acc"] = f"{self.disc_stats['disc_accuracy']:.2f}"
        return postfix

    @contextlib.contextmanager
    def numerical_guard(self) -> Iterator[None]:
        """Inside, a NaN or inf stops the run naming the environment step.

        Before the error goes on, what mbrl keeps is saved: the model and the replay buffer.

        Raises:
            NumericalError: the component's message, with ``at environment step N``.
        """
        try:
            yield
        except NumericalError as e:
            self.dynamics_model.save(self.work_dir)
            self.replay_buffer.save(self.work_dir)
            raise NumericalError(f"{e} at environment step {self.env_steps}") from e

    def state_dict(self) -> dict[str, Any]:
        """Everything the run needs to continue: components, buffers, counters, RNGs, logs."""
        return {
            "counters": {
                "env_steps": self.env_steps,
                "epoch": self.epoch,
                "updates_made": self.updates_made,
                "best_eval_reward": self.best_eval_reward,
                "model_train_iteration": self.model_trainer._train_iteration,
            },
            "disc_stats": dict(self.disc_stats),
            "optimism": None if self.optimism is None else self.optimism.state_dict(),
            "discriminator_ready": self.discriminator_ready,
            "model": run_state.state_dict(self.dynamics_model),
            "model_optimizer": self.model_trainer.optimizer.state_dict(),
            "discriminator": None
            if self.discriminator is None
            else self.discriminator.state_dict(),
            "discriminator_optimizer": None
            if self.discriminator is None
            else self.discriminator.optimizer.state_dict(),
            "agent": self.agent.state_dict(),
            "replay_buffer": run_state.state_dict(self.replay_buffer),
            "sac_buffer": None
            if self.sac_buffer is None
            else run_state.state_dict(self.sac_buffer),
            "random_streams": self.random_streams.state_dict(),
            "logs": run_state.state_dict(self.logger),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Loads :meth:`state_dict` into a freshly built run of the same configuration.

        Raises:
            RuntimeError, ValueError or KeyError: the state does not fit this run.
        """
        run_state.load_state_dict(self.dynamics_model, state["model"])
        self.model_trainer.optimizer.load_state_dict(state["model_optimizer"])
        if (self.discriminator is None) != (state["discriminator"] is None):
            raise ValueError(
                "one of the checkpoint and this run has a discriminator, the other not"
            )
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.discriminator.optimizer.load_state_dict(state["discriminator_optimizer"])
        self.agent.load_state_dict(state["agent"])
        self.disc_stats = dict(state["disc_stats"])
        if self.optimism is not None and state.get("optimism") is not None:
            self.optimism.load_state_dict(state["optimism"])
        self.discriminator_ready = state["discriminator_ready"]
        if self.discriminator_ready:  # (first: it scores what SAC's buffer loads unscored)
            self._hand_discriminator_to_players()
        run_state.load_state_dict(self.replay_buffer, state["replay_buffer"])
        if state["sac_buffer"] is not None:
            self.sac_buffer = self.scored_sac_buffer(
                mbrl.util.ReplayBuffer(
                    state["sac_buffer"]["capacity"],
                    self.obs_shape,
                    self.act_shape,
                    rng=np.random.default_rng(),
                )
            )
            run_state.load_state_dict(self.sac_buffer, state["sac_buffer"])
        counters = state["counters"]
        self.env_steps, self.epoch = counters["env_steps"], counters["epoch"]
        self.updates_made = counters["updates_made"]
        self.best_eval_reward = counters["best_eval_reward"]
        self.model_trainer._train_iteration = counters["model_train_iteration"]
        run_state.load_state_dict(self.logger, state["logs"])
        self.random_streams.load_state_dict(state["random_streams"])
