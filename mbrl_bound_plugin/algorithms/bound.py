"""``algorithm=bound``: mbrl's MBPO loop with the three steps of the MnM lower bound.

Read :func:`train` beside ``docs/algorithm.md`` ("The deep algorithm") and beside mbrl's
``mbrl/algorithms/mbpo.py``: the loop is MBPO's (real step, periodic model training,
branched model rollouts, SAC on the rollouts, evaluation at each epoch end) with three
marked steps: (1) a discriminator step after each model training, (2) the bound term in
the model loss, (3) SAC on the augmented reward. What the run owns lives in
:class:`~mbrl_bound_plugin.algorithms.bound_run.BoundRun`; when it saves itself, in
:class:`~mbrl_bound_plugin.util.checkpoint.Checkpointer`.
"""

from __future__ import annotations

import contextlib
import os

import gymnasium as gym
import mbrl.constants
import mbrl.models
import mbrl.types
import mbrl.util
import mbrl.util.common
import mbrl.util.math
import numpy as np
import omegaconf
import torch
from mbrl.algorithms.mbpo import (
    evaluate,
    maybe_replace_sac_buffer,
    rollout_model_and_populate_sac_buffer,
)

from mbrl_bound_plugin.algorithms.bound_run import BoundRun
from mbrl_bound_plugin.models.discriminator import Discriminator
from mbrl_bound_plugin.util.checkpoint import Checkpointer
from mbrl_bound_plugin.util.device import resolve_device


def discriminator_step(
    discriminator: Discriminator,
    model_env: mbrl.models.ModelEnv,
    replay_buffer: mbrl.util.ReplayBuffer,
    max_rows: int,
    generator: torch.Generator,
) -> dict[str, float]:
    """Step (1): real ``(s, a, s')`` against model ``(s, a, ŝ')`` at the same ``(s, a)``.

    Rows are drawn from ``D`` without replacement, so every row is distinct and the
    discriminator's held-out rows are not trained on in this fit.

    Args:
        discriminator: the discriminator to fit.
        model_env: mbrl's ``ModelEnv`` over the current model (draws ``ŝ' ~ q``).
        replay_buffer: the real transitions ``D``.
        max_rows: at most this many ``(s, a)`` rows are drawn from ``D``.
        generator: torch generator for the rows, the discriminator's split and batches.

    Returns:
        What :meth:`Discriminator.fit` returns (its diagnostics on held-out rows).
    """
    model = model_env.dynamics_model.model
    num_models = len(getattr(model, "elite_models", None) or range(len(model)))
    rows = min(len(replay_buffer), max_rows)
    rows -= rows % num_models  # mbrl's random_model propagation needs a multiple
    chosen = torch.randperm(len(replay_buffer), generator=generator)[:rows].numpy()
    batch = replay_buffer.get_all()[chosen]
    obs = batch.obs.astype(np.float32)
    act = batch.act.astype(np.float32)
    model_state = model_env.reset(obs, return_as_np=True)
    tilt = getattr(model_env.dynamics_model, "optimism", None)
    with tilt.unrecorded() if tilt is not None else contextlib.nullcontext():
        model_next_obs, *_ = model_env.step(act, model_state, sample=True)  # (tilted, if so)
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

    The body is laid out as mbrl's ``mbpo.train`` (its order, its local names, its line
    breaks), so that ``diff -w`` against it shows only the bound's three steps and the
    run's bookkeeping (``docs/algorithm.md``, "Diffing train against mbrl's mbpo.train").

    Args:
        env: the environment to train in.
        test_env: a copy of the environment for evaluation.
        termination_fn: the termination function used in model rollouts.
        cfg: the configuration (``algorithm=bound``, MBPO ``overrides``, ``discriminator``),
            e.g. from :func:`mbrl_bound_plugin.compose`; ``device: auto`` is resolved
            here, and numpy's and torch's global generators are seeded with ``cfg.seed``.
        silent: if ``True``, no console log, no progress bar.
        work_dir: where logs, model, buffer, SAC weights and checkpoints go (default: cwd).

    Returns:
        The best evaluation return.

    Raises:
        UsageError: invalid settings, or a checkpoint that cannot be continued.
        NumericalError: a NaN or inf in a reward or loss (the model and the replay
            buffer are saved first).
        RunInterrupted: SIGTERM, after writing a checkpoint.

    Checkpoints go to ``work_dir/checkpoints`` every ``cfg.checkpoint.every_epochs``
    epochs and on SIGTERM; ``cfg.resume`` continues from the newest one.
    """
    # fmt: off
    # (laid out by hand as mbrl's mbpo.py is, black at 88 columns: see the docstring)
    # ------------------- Initialization -------------------
    debug_mode = cfg.get("debug_mode", False)
    cfg.device = resolve_device(cfg.device)
    if cfg.seed is not None:  # (what mbrl's main.py does before train: network inits)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)

    obs_shape = env.observation_space.shape
    act_shape = env.action_space.shape

    work_dir = work_dir or os.getcwd()
    checkpointer = Checkpointer(work_dir, cfg, env, silent)  # settings checked, checkpoint read
    # What must survive a restart is the run's (bound_run.py): agent, logger, generators,
    # model, buffers, discriminator, built in mbpo.train's order; and its counters.
    run = BoundRun(env, test_env, termination_fn, cfg, work_dir, silent)
    agent = run.agent
    logger = run.logger
    video_recorder = run.video_recorder
    rng = run.rng
    dynamics_model = run.dynamics_model
    replay_buffer = run.replay_buffer
    saved_state = checkpointer.restore()  # the run's state_dict to continue from, or None
    if saved_state is None:
        run.explore()
    else:
        with checkpointer.loading():  # (a state that does not fit: one line naming the file)
            run.load_state_dict(saved_state)
        del saved_state  # (its replay buffer's copy can be large)

    # ---------------------------------------------------------
    # --------------------- Training Loop ---------------------
    rollout_batch_size = (
        cfg.overrides.effective_model_rollouts_per_step * cfg.algorithm.freq_train_model
    )
    trains_per_epoch = int(
        np.ceil(cfg.overrides.epoch_length / cfg.overrides.freq_train_model)
    )
    updates_made = run.updates_made
    env_steps = run.env_steps
    model_env = run.model_env
    model_trainer = run.model_trainer
    best_eval_reward = run.best_eval_reward
    epoch = run.epoch
    sac_buffer = run.sac_buffer
    with checkpointer, run.numerical_guard(), run.progress_bar() as progress:
        while env_steps < cfg.overrides.num_steps:
            rollout_length = int(
                mbrl.util.math.truncated_linear(
                    *(cfg.overrides.rollout_schedule + [epoch + 1])
                )
            )
            sac_buffer_capacity = rollout_length * rollout_batch_size * trains_per_epoch
            sac_buffer_capacity *= cfg.overrides.num_epochs_to_retain_sac_buffer
            sac_buffer = maybe_replace_sac_buffer(
                sac_buffer, obs_shape, act_shape, sac_buffer_capacity, cfg.seed
            )
            # (with SAC's reward on the ratio term, a ScoredReplayBuffer: each row scored by
            # C as it comes in, and all rows again at each discriminator step)
            sac_buffer = run.sac_buffer = run.scored_sac_buffer(sac_buffer)
            obs = None
            terminated = False
            truncated = False
            # (a run resumed from a SIGTERM checkpoint starts mid-epoch, on a fresh episode)
            first_step = env_steps % cfg.overrides.epoch_length
            for steps_epoch in range(first_step, cfg.overrides.epoch_length):
                if steps_epoch == first_step or terminated or truncated:
                    obs, _ = env.reset()
                    terminated = False
                    truncated = False
                # --- Doing env step and adding to model dataset ---
                (
                    next_obs,
                    reward,
                    terminated,
                    truncated,
                    _,
                ) = mbrl.util.common.step_env_and_add_to_buffer(
                    env, obs, agent, {}, replay_buffer
                )
                run.check_real_reward(float(reward))

                # --------------- Model Training -----------------
                if (env_steps + 1) % cfg.overrides.freq_train_model == 0:
                    # (2) model step: NLL + beta * -(g(logit C) + gamma (1-done) V), C, V frozen
                    mbrl.util.common.train_model_and_save_model_and_data(
                        dynamics_model,
                        model_trainer,
                        cfg.overrides,
                        replay_buffer,
                        work_dir=work_dir,
                        callback=run.check_model_loss,
                    )

                    # (1) discriminator step: real (label 1) vs model (label 0) at same (s, a);
                    # then SAC's buffer is scored again by the new C
                    if run.bound_terms:
                        run.use_discriminator(
                            discriminator_step(
                                run.discriminator,
                                model_env,
                                replay_buffer,
                                cfg.algorithm.disc_max_rows,
                                run.disc_generator,
                            )
                        )

                    # --------- Rollout new model and store imagined trajectories --------
                    # Batch all rollouts for the next freq_train_model steps together
                    rollout_model_and_populate_sac_buffer(
                        model_env,
                        replay_buffer,
                        agent,
                        sac_buffer,
                        cfg.algorithm.sac_samples_action,
                        rollout_length,
                        rollout_batch_size,
                    )

                    if debug_mode:
                        print(
                            f"Epoch: {epoch}. "
                            f"SAC buffer size: {len(sac_buffer)}. "
                            f"Rollout length: {rollout_length}. "
                            f"Steps: {env_steps}"
                        )

                # --------------- Agent Training -----------------
                # (3) policy step: SAC on model transitions, rt = f(r̂) + g(logit C);
                # this step's model batches drawn (and scored) in one go
                updates_due = (env_steps + 1) % cfg.overrides.sac_updates_every_steps == 0
                with agent.batches_ahead(
                    sac_buffer,
                    cfg.overrides.sac_batch_size,
                    cfg.overrides.num_sac_updates_per_step if updates_due else 0,
                ):
                    for _ in range(cfg.overrides.num_sac_updates_per_step):
                        use_real_data = rng.random() < cfg.algorithm.real_data_ratio
                        which_buffer = replay_buffer if use_real_data else sac_buffer
                        if (env_steps + 1) % cfg.overrides.sac_updates_every_steps != 0 or len(
                            which_buffer
                        ) < cfg.overrides.sac_batch_size:
                            break  # only update every once in a while

                        agent.update(
                            which_buffer,
                            cfg.overrides.sac_batch_size,
                            updates_made,
                            logger,
                            model_data=not use_real_data,  # real transitions: no ratio term
                        )
                        updates_made += 1
                        if not silent and updates_made % cfg.log_frequency_agent == 0:
                            logger.dump(updates_made, save=True)

                # ------ Epoch ended (evaluate and save model) ------
                if (env_steps + 1) % cfg.overrides.epoch_length == 0:
                    avg_reward = evaluate(
                        test_env, agent, cfg.algorithm.num_eval_episodes, video_recorder
                    )
                    logger.log_data(
                        mbrl.constants.RESULTS_LOG_NAME,
                        {
                            "epoch": epoch,
                            "env_step": env_steps,
                            "episode_reward": avg_reward,
                            "rollout_length": rollout_length,
                            **run.bound_stats(),  # the discriminator's, SAC's mean rt, the tilt's
                        },
                    )
                    progress.set_postfix(run.progress_postfix(avg_reward))
                    if avg_reward > best_eval_reward:
                        video_recorder.save(f"{epoch}.mp4")
                        best_eval_reward = avg_reward
                        agent.sac_agent.save_checkpoint(
                            ckpt_path=os.path.join(work_dir, "sac.pth")
                        )
                    epoch += 1
                    agent.set_epoch(epoch)  # the ratio term's warm-up

                env_steps += 1
                progress.update(1)
                obs = next_obs
                # ------ the counters back to the run, then a checkpoint if one is due ------
                run.env_steps, run.epoch, run.updates_made = env_steps, epoch, updates_made
                run.best_eval_reward = best_eval_reward
                if checkpointer.due(env_steps):  # every `every_epochs` epochs, and on SIGTERM
                    checkpointer.after_step(run.state_dict(), env_steps)
    return np.float32(best_eval_reward)
