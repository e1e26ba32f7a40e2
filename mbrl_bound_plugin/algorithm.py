"""``algorithm=bound``: MBPO's loop with the three steps of the MnM lower bound.

Hold ``shared/docs/bound.md`` ("The deep algorithm") beside :func:`train`: the loop is
mbrl's MBPO (real step, periodic model training, branched model rollouts, SAC on the
rollouts) with (1) a discriminator step after each model training, (2) the bound term
in the model loss and (3) SAC on the augmented reward. Everything else is imported from
``mbrl.algorithms.mbpo`` and ``mbrl.util.common``.
"""

from __future__ import annotations

import math
import os
import pathlib
import sys
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import hydra.utils
import mbrl.algorithms.mbpo as mbpo
import mbrl.constants
import mbrl.models
import mbrl.planning
import mbrl.types
import mbrl.util
import mbrl.util.common
import mbrl.util.math
import numpy as np
import omegaconf
import torch
import tqdm
from mbrl.third_party.pytorch_sac import VideoRecorder

from mbrl_bound_plugin import run_state
from mbrl_bound_plugin.agent import BoundSACAgent, NumericalError
from mbrl_bound_plugin.checkpoint import (
    RunInterrupted,
    SigtermWatch,
    changed_settings,
    check_resumable,
    checkpoint_dir,
    config_dict,
    find_resume_checkpoint,
    load_checkpoint,
    run_identity,
    save_checkpoint,
)
from mbrl_bound_plugin.cli import PROG
from mbrl_bound_plugin.discriminator import Discriminator
from mbrl_bound_plugin.envs import UsageError
from mbrl_bound_plugin.model import BoundTransitionRewardModel

BOUND_LOG_FORMAT = mbpo.MBPO_LOG_FORMAT + [
    ("disc_accuracy", "DACC", "float"),
    ("kl_estimate", "KL", "float"),
    ("bound_reward", "BR", "float"),
]
MODEL_BOUND_LOG_FORMAT = [("model_nll", "NLL", "float"), ("bound_term", "BT", "float")]


class _ModelTrainLog:
    """Logger view for mbrl's ``ModelTrainer``: adds the bound term beside the NLL.

    ``model_train.csv`` gets the columns ``model_nll`` and ``bound_term`` (means over
    the epoch's updates) next to mbrl's ``model_loss``.
    """

    def __init__(self, logger: mbrl.util.Logger, model: BoundTransitionRewardModel):
        self.logger = logger
        self.model = model

    def register_group(self, group_name: str, log_format: list, **kwargs: Any) -> None:
        self.logger.register_group(group_name, log_format + MODEL_BOUND_LOG_FORMAT, **kwargs)

    def log_data(self, group_name: str, data: Mapping[str, Any]) -> None:
        stats = {"model_nll": math.nan, "bound_term": math.nan} | self.model.pop_bound_stats()
        self.logger.log_data(group_name, {**data, **stats})


def _instantiate(node: omegaconf.DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` whose ValueErrors name the config key (exit code 2)."""
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
    wraps it with the same wrapper options.

    Args:
        cfg: the run's configuration.
        obs_shape: observation shape.
        act_shape: action shape.

    Returns:
        The wrapped model.
    """
    base = mbrl.util.common.create_one_dim_tr_model(cfg, obs_shape, act_shape)
    return _instantiate(
        cfg.algorithm.model_wrapper,
        "algorithm.model_wrapper",
        model=base.model,
        target_is_delta=base.target_is_delta,
        normalize=base.input_normalizer is not None,
        normalize_double_precision=cfg.algorithm.get("normalize_double_precision", False),
        learned_rewards=base.learned_rewards,
        obs_process_fn=base.obs_process_fn,
        no_delta_list=base.no_delta_list,
        num_elites=base.num_elites,
    )


def _check_finite(value: float, component: str, env_step: int) -> None:
    if not math.isfinite(value):
        raise NumericalError(f"{component} is {value} at environment step {env_step}")


def discriminator_step(
    discriminator: Discriminator,
    model_env: mbrl.models.ModelEnv,
    replay_buffer: mbrl.util.ReplayBuffer,
    max_rows: int,
    generator: torch.Generator,
) -> dict[str, float]:
    """Spec step 1: real ``(s, a, s')`` against model ``(s, a, ŝ')`` at the same ``(s, a)``.

    Args:
        discriminator: the discriminator to fit.
        model_env: mbrl's ``ModelEnv`` over the current model (draws ``ŝ' ~ q``).
        replay_buffer: the real transitions ``D``.
        max_rows: at most this many ``(s, a)`` rows are drawn from ``D``.
        generator: torch generator for the discriminator's split and mini-batches.

    Returns:
        ``disc_loss``, ``disc_accuracy`` (held out) and ``kl_estimate``.
    """
    num_models = len(
        model_env.dynamics_model.model.elite_models or range(len(model_env.dynamics_model))
    )
    rows = min(len(replay_buffer), max_rows)
    rows -= rows % num_models  # mbrl's random_model propagation needs a multiple
    batch = replay_buffer.sample(rows)
    obs = batch.obs.astype(np.float32)
    act = batch.act.astype(np.float32)
    model_state = model_env.reset(obs, return_as_np=True)
    model_next_obs, *_ = model_env.step(act, model_state, sample=True)
    return discriminator.fit(obs, act, batch.next_obs, model_next_obs, generator=generator)


def train(
    env: gym.Env,
    test_env: gym.Env,
    termination_fn: mbrl.types.TermFnType,
    cfg: omegaconf.DictConfig,
    silent: bool = False,
    work_dir: str | None = None,
) -> np.float32:
    """Trains model and policy jointly on the MnM bound; ``mbrl.algorithms.mbpo.train``'s API.

    Args:
        env: the environment to train in.
        test_env: a copy of the environment for evaluation.
        termination_fn: the termination function used in model rollouts.
        cfg: the configuration (``algorithm=bound``, MBPO ``overrides``, ``discriminator``).
        silent: if ``True``, no console log, no progress bar.
        work_dir: where logs, model, buffer, SAC weights and checkpoints go (default: cwd).

    Returns:
        The best evaluation return.

    Checkpoints go to ``work_dir/checkpoints`` every ``cfg.checkpoint.every_epochs``
    epochs and on SIGTERM (then :class:`RunInterrupted` is raised); ``cfg.resume``
    continues from the newest one (see :func:`find_resume_checkpoint`).
    """
    # ------------------- Initialization -------------------
    obs_shape = env.observation_space.shape
    act_shape = env.action_space.shape
    mbrl.planning.complete_agent_cfg(env, cfg.algorithm.agent)
    agent: BoundSACAgent = _instantiate(
        cfg.algorithm.bound_agent,
        "algorithm.bound_agent",
        sac_agent=hydra.utils.instantiate(cfg.algorithm.agent),
    )

    work_dir = work_dir or os.getcwd()
    ckpt_cfg = cfg.get("checkpoint", None) or {}
    ckpt_keep, ckpt_every = ckpt_cfg.get("keep", 1), ckpt_cfg.get("every_epochs", 1)
    for key, value in (("keep", ckpt_keep), ("every_epochs", ckpt_every)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"checkpoint.{key}={value!r} must be an integer >= 1")
    ckpt_dir = checkpoint_dir(work_dir)
    identity = run_identity(cfg, env)
    run_config = config_dict(cfg)  # (the config does not change during a run)
    resume_path = find_resume_checkpoint(cfg.get("resume", False), ckpt_dir)
    saved = None
    if resume_path is not None:
        saved = load_checkpoint(resume_path)
        check_resumable(saved, resume_path, identity)

    logger = mbrl.util.Logger(work_dir, enable_back_compatible=True)
    logger.register_group(
        mbrl.constants.RESULTS_LOG_NAME, BOUND_LOG_FORMAT, color="green", dump_frequency=1
    )
    video_recorder = VideoRecorder(work_dir if cfg.get("save_video", False) else None)

    rng = np.random.default_rng(seed=cfg.seed)
    torch_generator = torch.Generator(device=cfg.device)
    disc_generator = torch.Generator()  # CPU: the discriminator's split and mini-batches
    if cfg.seed is not None:
        torch_generator.manual_seed(cfg.seed)
        disc_generator.manual_seed(cfg.seed + 1)

    dynamics_model = create_bound_model(cfg, obs_shape, act_shape)
    discriminator: Discriminator = _instantiate(
        cfg.discriminator, "discriminator", obs_dim=obs_shape[0], act_dim=act_shape[0]
    )
    first_rows = min(
        cfg.algorithm.initial_exploration_steps + cfg.overrides.freq_train_model,
        cfg.algorithm.disc_max_rows,
    )
    if discriminator.batch_size > discriminator.num_train_rows(first_rows):
        raise UsageError(
            f"discriminator.batch_size={discriminator.batch_size} is larger than the "
            f"{discriminator.num_train_rows(first_rows)} training rows of the first "
            "discriminator step; lower it or raise algorithm.initial_exploration_steps"
        )
    dtype = np.double if cfg.algorithm.get("normalize_double_precision", False) else np.float32
    replay_buffer = mbrl.util.common.create_replay_buffer(
        cfg, obs_shape, act_shape, rng=rng, obs_type=dtype, action_type=dtype, reward_type=dtype
    )
    random_explore = cfg.algorithm.random_initial_explore
    if saved is None:
        mbrl.util.common.rollout_agent_trajectories(
            env,
            cfg.algorithm.initial_exploration_steps,
            mbrl.planning.RandomAgent(env) if random_explore else agent,
            {} if random_explore else {"sample": True, "batched": False},
            replay_buffer=replay_buffer,
        )
        try:
            agent.check_real_rewards(replay_buffer.get_all().rewards)
        except ValueError as e:
            raise UsageError(f"algorithm.bound_agent: {e}") from e

    # --------------------- Training Loop ---------------------
    rollout_batch_size = (
        cfg.overrides.effective_model_rollouts_per_step * cfg.algorithm.freq_train_model
    )
    trains_per_epoch = int(np.ceil(cfg.overrides.epoch_length / cfg.overrides.freq_train_model))
    updates_made = 0
    env_steps = 0
    model_env = mbrl.models.ModelEnv(
        env, dynamics_model, termination_fn, None, generator=torch_generator
    )
    model_trainer = mbrl.models.ModelTrainer(
        dynamics_model,
        optim_lr=cfg.overrides.model_lr,
        weight_decay=cfg.overrides.model_wd,
        logger=None if silent else _ModelTrainLog(logger, dynamics_model),
    )
    model_losses: list[float] = []

    def record_model_loss(_model, _iteration, _epoch, loss, *_args) -> None:
        model_losses.append(loss)

    best_eval_reward = -np.inf
    epoch = 0
    sac_buffer = None
    disc_stats = {"disc_accuracy": math.nan, "kl_estimate": math.nan}
    discriminator_ready = False  # True once the first discriminator step ran

    numpy_generators = {"rng": rng}  # (also the replay buffer's generator)
    torch_generators = {"model_env": torch_generator, "discriminator": disc_generator}
    envs = {"env": env, "test_env": test_env}

    def hand_discriminator_to_players() -> None:
        agent.set_discriminator(discriminator)
        dynamics_model.set_bound_critics(
            discriminator,
            agent.value,
            agent.gamma,
            frozen=(agent.sac_agent.policy, agent.sac_agent.critic),
        )

    def write_checkpoint() -> pathlib.Path:
        state = {
            "meta": {"identity": identity, "config": run_config},
            "counters": {
                "env_steps": env_steps,
                "epoch": epoch,
                "updates_made": updates_made,
                "best_eval_reward": best_eval_reward,
                "model_train_iteration": model_trainer._train_iteration,
            },
            "disc_stats": disc_stats,
            "discriminator_ready": discriminator_ready,
            "model": dynamics_model.training_state(),
            "model_optimizer": model_trainer.optimizer.state_dict(),
            "discriminator": discriminator.training_state(),
            "agent": agent.training_state(),
            "replay_buffer": run_state.buffer_state(replay_buffer),
            "sac_buffer": None if sac_buffer is None else run_state.buffer_state(sac_buffer),
            "rng": run_state.rng_state(numpy_generators, torch_generators, envs),
            "logs": run_state.logger_state(logger),
        }
        return save_checkpoint(ckpt_dir, env_steps, state, keep=ckpt_keep)

    if saved is not None:
        try:
            dynamics_model.load_training_state(saved["model"])
            model_trainer.optimizer.load_state_dict(saved["model_optimizer"])
            discriminator.load_training_state(saved["discriminator"])
            agent.load_training_state(saved["agent"])
            run_state.restore_buffer(replay_buffer, saved["replay_buffer"])
            if saved["sac_buffer"] is not None:
                sac_buffer = mbrl.util.ReplayBuffer(
                    saved["sac_buffer"]["capacity"],
                    obs_shape,
                    act_shape,
                    rng=np.random.default_rng(),
                )
                run_state.restore_buffer(sac_buffer, saved["sac_buffer"])
        except (RuntimeError, ValueError, KeyError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
            raise UsageError(
                f"checkpoint {resume_path} does not fit this run's configuration: {reason}"
            ) from e
        counters = saved["counters"]
        env_steps, epoch = counters["env_steps"], counters["epoch"]
        updates_made = counters["updates_made"]
        best_eval_reward = counters["best_eval_reward"]
        model_trainer._train_iteration = counters["model_train_iteration"]
        disc_stats = saved["disc_stats"]
        discriminator_ready = saved["discriminator_ready"]
        if discriminator_ready:
            hand_discriminator_to_players()
        run_state.restore_logger(logger, saved["logs"])
        run_state.restore_rng(saved["rng"], numpy_generators, torch_generators, envs)
        if not silent:
            changes = changed_settings(saved["meta"]["config"], run_config)
            print(
                f"{PROG}: resuming from {resume_path} (environment step {env_steps})"
                + (f"; changed settings: {'; '.join(changes)}" if changes else ""),
                file=sys.stderr,
            )
        del saved  # (the replay buffer's copy can be large)

    progress = tqdm.tqdm(
        total=cfg.overrides.num_steps,
        initial=min(env_steps, cfg.overrides.num_steps),
        desc="bound",
        unit="step",
        disable=silent,
        leave=False,
    )
    sigterm = SigtermWatch()
    try:
        while env_steps < cfg.overrides.num_steps:
            rollout_length = int(
                mbrl.util.math.truncated_linear(*(cfg.overrides.rollout_schedule + [epoch + 1]))
            )
            sac_buffer_capacity = rollout_length * rollout_batch_size * trains_per_epoch
            sac_buffer_capacity *= cfg.overrides.num_epochs_to_retain_sac_buffer
            sac_buffer = mbpo.maybe_replace_sac_buffer(
                sac_buffer, obs_shape, act_shape, sac_buffer_capacity, cfg.seed
            )
            obs, terminated, truncated = None, False, False
            # (a run resumed from a SIGTERM checkpoint starts mid-epoch, on a fresh episode)
            first_step = env_steps % cfg.overrides.epoch_length
            for steps_epoch in range(first_step, cfg.overrides.epoch_length):
                if steps_epoch == first_step or terminated or truncated:
                    obs, _ = env.reset()
                    terminated, truncated = False, False
                # --- real step: act in the environment, store (s, a, r, s') in D ---
                next_obs, reward, terminated, truncated, _ = (
                    mbrl.util.common.step_env_and_add_to_buffer(env, obs, agent, {}, replay_buffer)
                )
                _check_finite(float(reward), "environment reward", env_steps)
                try:
                    agent.check_real_rewards(float(reward))
                except ValueError as e:  # a reward_floor that held during exploration only
                    raise UsageError(
                        f"algorithm.bound_agent: {e} (environment step {env_steps}); fix it "
                        f"and continue with resume=true hydra.run.dir={work_dir}"
                    ) from e

                if (env_steps + 1) % cfg.overrides.freq_train_model == 0:
                    # --- model step: NLL + beta * -(logit C + gamma V), C and V frozen ---
                    model_losses.clear()
                    mbrl.util.common.train_model_and_save_model_and_data(
                        dynamics_model,
                        model_trainer,
                        cfg.overrides,
                        replay_buffer,
                        work_dir=work_dir,
                        callback=record_model_loss,
                    )
                    for loss in model_losses:
                        _check_finite(loss, "model loss", env_steps)

                    # --- discriminator step: logistic loss, real (label 1) vs model (label 0) ---
                    disc_stats = discriminator_step(
                        discriminator,
                        model_env,
                        replay_buffer,
                        cfg.algorithm.disc_max_rows,
                        disc_generator,
                    )
                    _check_finite(disc_stats["disc_loss"], "discriminator loss", env_steps)
                    # From here on, SAC batches and the next model step use this discriminator.
                    discriminator_ready = True
                    hand_discriminator_to_players()

                    # --- branched model rollouts into the SAC buffer (MBPO) ---
                    mbpo.rollout_model_and_populate_sac_buffer(
                        model_env,
                        replay_buffer,
                        agent,
                        sac_buffer,
                        cfg.algorithm.sac_samples_action,
                        rollout_length,
                        rollout_batch_size,
                    )

                # --- policy step: SAC on model transitions, rt = f(r̂) + lam clip(logit C) ---
                for _ in range(cfg.overrides.num_sac_updates_per_step):
                    use_real_data = rng.random() < cfg.algorithm.real_data_ratio
                    which_buffer = replay_buffer if use_real_data else sac_buffer
                    if (env_steps + 1) % cfg.overrides.sac_updates_every_steps != 0 or len(
                        which_buffer
                    ) < cfg.overrides.sac_batch_size:
                        break
                    try:
                        agent.update(
                            which_buffer, cfg.overrides.sac_batch_size, updates_made, logger
                        )
                    except NumericalError as e:
                        raise NumericalError(
                            f"{e} is not finite at environment step {env_steps}"
                        ) from e
                    updates_made += 1
                    if not silent and updates_made % cfg.log_frequency_agent == 0:
                        logger.dump(updates_made, save=True)

                # ------ epoch end: evaluate, log the diagnostics, save the best SAC ------
                if (env_steps + 1) % cfg.overrides.epoch_length == 0:
                    avg_reward = mbpo.evaluate(
                        test_env, agent, cfg.algorithm.num_eval_episodes, video_recorder
                    )
                    logger.log_data(
                        mbrl.constants.RESULTS_LOG_NAME,
                        {
                            "epoch": epoch,
                            "env_step": env_steps,
                            "episode_reward": avg_reward,
                            "rollout_length": rollout_length,
                            "disc_accuracy": disc_stats["disc_accuracy"],
                            "kl_estimate": disc_stats["kl_estimate"],
                            "bound_reward": agent.pop_bound_reward(),
                        },
                    )
                    progress.set_postfix(
                        eval_return=f"{avg_reward:.1f}",
                        disc_acc=f"{disc_stats['disc_accuracy']:.2f}",
                    )
                    if avg_reward > best_eval_reward:
                        video_recorder.save(f"{epoch}.mp4")
                        best_eval_reward = avg_reward
                        agent.sac_agent.save_checkpoint(ckpt_path=os.path.join(work_dir, "sac.pth"))
                    epoch += 1

                env_steps += 1
                progress.update(1)
                obs = next_obs
                # ------ checkpoint: every `every_epochs` epochs, and on SIGTERM ------
                if sigterm.received:
                    path = write_checkpoint()
                    if sigterm.stops_run:
                        raise RunInterrupted(sigterm.received[0], env_steps, path)
                    sigterm.pass_on()
                elif env_steps % (ckpt_every * cfg.overrides.epoch_length) == 0:
                    write_checkpoint()
    except NumericalError:
        # stop with a one-line error, keeping what mbrl keeps: the model and the data
        dynamics_model.save(work_dir)
        replay_buffer.save(work_dir)
        raise
    finally:
        sigterm.restore()
        progress.close()
    return np.float32(best_eval_reward)
