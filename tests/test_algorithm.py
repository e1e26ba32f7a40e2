"""algorithm=bound end to end, and its numerical guard."""

from __future__ import annotations

import contextlib
import copy
import csv
import math
import pathlib
import shutil

import gymnasium as gym
import mbrl.types
import mbrl.util
import mbrl.util.common
import numpy as np
import pytest
import torch
from conftest import TINY_BOUND
from hydra import compose, initialize_config_dir

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import mbrl_bound_conf_dir
from mbrl_bound_plugin.algorithms import bound as algorithm
from mbrl_bound_plugin.algorithms.bound import discriminator_step, train
from mbrl_bound_plugin.algorithms.bound_run import DISC_STATS, BoundRun
from mbrl_bound_plugin.env.factory import make_env
from mbrl_bound_plugin.errors import NumericalError, UsageError
from mbrl_bound_plugin.models.discriminator import Discriminator
from mbrl_bound_plugin.planning.sac_agent import BoundSACAgent
from mbrl_bound_plugin.util.checkpoint import latest_checkpoint, load_checkpoint
from mbrl_bound_plugin.util.replay_buffer import ScoredReplayBuffer


def _check_disc_columns(row: dict[str, str]) -> None:
    """The discriminator's held-out diagnostics of one results row, and how they relate."""
    stats = {k: float(row[k]) for k in DISC_STATS}
    assert all(math.isfinite(v) for v in stats.values()), stats
    assert 0.0 <= stats["disc_accuracy"] <= 1.0
    assert stats["disc_logloss"] > 0.0
    assert stats["exp_logit_model"] > 0.0 and stats["exp_neglogit_real"] > 0.0
    # every misclassified transition costs at least log 2 in the logistic loss
    assert stats["disc_logloss"] >= 2 * math.log(2) * (1 - stats["disc_accuracy"]) - 1e-6
    # Jensen on the same held-out model logits: E_q[exp(logit)] >= exp(E_q[logit]) and
    # kl_estimate = -E_q[logit] (a flipped sign or another sample set breaks it)
    assert stats["exp_logit_model"] >= math.exp(-stats["kl_estimate"]) * (1 - 1e-5)


@pytest.mark.slow
def test_bound_trains_through_the_command_and_logs_its_diagnostics(run_cli, results, tmp_path):
    # (method none: the model step of beta and its logged bound terms)
    proc = run_cli(
        "algorithm=bound",
        "overrides=mbpo_inv_pendulum_v5",
        *TINY_BOUND,
        "algorithm.optimism.method=none",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = results()
    assert [int(float(r["epoch"])) for r in rows] == [0, 1]
    for row in rows:
        for column in ("env_step", "episode_reward", "rollout_length", "bound_reward"):
            assert math.isfinite(float(row[column]))
        _check_disc_columns(row)
        # C's calibration on the rollouts SAC trained on: a mean of exp, so positive
        assert float(row["exp_logit_rollout"]) > 0.0
    # the final checkpoint holds the run as it ended: its discriminator statistics are
    # the last row's, and the warm-up was told of both epochs
    (ckpt_dir,) = {p.parent for p in (tmp_path / "exp").rglob("*.ckpt")}
    state = load_checkpoint(latest_checkpoint(ckpt_dir))["run"]
    assert state["disc_stats"] == {k: float(rows[-1][k]) for k in DISC_STATS}
    assert state["agent"]["epochs_done"] == state["counters"]["epoch"] == 2
    model_rows = results("model_train")
    assert {"model_loss", "model_nll", "bound_term", "bound_logit", "bound_value"} <= set(
        model_rows[0]
    )
    # the first model training has no discriminator yet (no bound term: its columns are
    # empty, not 0); the second has
    bound_terms = [float(r["bound_term"]) for r in model_rows]
    assert math.isnan(bound_terms[0]) and any(math.isfinite(b) for b in bound_terms)
    for row in model_rows:
        term, logit, value = (float(row[k]) for k in ("bound_term", "bound_logit", "bound_value"))
        nll = float(row["model_nll"])
        if math.isnan(term):  # mbrl's training alone: its loss is the NLL
            assert math.isnan(logit) and math.isnan(value)
            assert float(row["model_loss"]) == pytest.approx(nll, rel=1e-5, abs=1e-6)
            continue
        assert all(map(math.isfinite, (term, logit, value)))
        assert term == pytest.approx(-(logit + value), rel=1e-5, abs=1e-6)
        # mbrl's model_loss is the model's whole loss, NLL + beta * bound term (beta 0.1)
        assert float(row["model_loss"]) == pytest.approx(nll + 0.1 * term, rel=1e-5, abs=1e-6)


class _RewardAfter(gym.Wrapper):
    """Returns ``reward`` instead of the env's from the given step on."""

    def __init__(self, env: gym.Env, step: int, reward: float):
        super().__init__(env)
        self.from_step, self.steps, self.reward = step, 0, reward

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return (
            obs,
            (self.reward if self.steps > self.from_step else reward),
            terminated,
            truncated,
            info,
        )


def _tiny_bound_cfg(*extra: str):
    with initialize_config_dir(version_base="1.1", config_dir=str(mbrl_bound_conf_dir())):
        return compose(
            config_name="main",
            overrides=["algorithm=bound", "overrides=mbpo_inv_pendulum_v5", "device=cpu"]
            + [o.lstrip("+") for o in TINY_BOUND if "num_epochs_train_model" not in o]
            + ["+overrides.num_epochs_train_model=2", *extra],
        )


def test_nan_reward_stops_the_run_naming_component_and_step(tmp_path: pathlib.Path):
    cfg = _tiny_bound_cfg()
    env, term_fn, _ = make_env(cfg)
    test_env, *_ = make_env(cfg)
    # 100 exploration steps, then 30 steps of training before the reward turns NaN
    with pytest.raises(NumericalError, match=r"environment reward is nan at environment step 30"):
        train(
            _RewardAfter(env, 130, math.nan),
            test_env,
            term_fn,
            cfg,
            silent=True,
            work_dir=str(tmp_path),
        )
    # what mbrl keeps was saved before stopping
    assert (tmp_path / "replay_buffer.npz").is_file()
    assert (tmp_path / "model.pth").is_file()
    saved = np.load(tmp_path / "replay_buffer.npz")
    assert len(saved["obs"]) == 131


def test_a_real_reward_below_the_floor_mid_run_is_a_usage_error(tmp_path: pathlib.Path):
    # InvertedPendulum's reward is 0 or 1 during exploration, above the floor -1; then -2
    cfg = _tiny_bound_cfg(
        "algorithm.bound_agent.mode=bound", "algorithm.bound_agent.reward_floor=-1"
    )
    env, term_fn, _ = make_env(cfg)
    test_env, *_ = make_env(cfg)
    with pytest.raises(UsageError, match=r"algorithm.bound_agent: .*environment step 20"):
        train(
            _RewardAfter(env, 120, -2.0),
            test_env,
            term_fn,
            cfg,
            silent=True,
            work_dir=str(tmp_path),
        )


@pytest.mark.slow
def test_sac_reads_real_batches_without_the_ratio_and_logs_the_runs_statistics(
    tmp_path: pathlib.Path, monkeypatch, one_torch_thread
):
    # half of SAC's batches real; two model trainings (and discriminator steps) in 100 steps
    cfg = _tiny_bound_cfg(
        "algorithm.real_data_ratio=0.5", "overrides.num_steps=100", "overrides.freq_train_model=50"
    )
    runs, updates = [], []

    class RecordedRun(BoundRun):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            runs.append(self)

    original_update = BoundSACAgent.update

    def update(self, buffer, batch_size, updates_made, logger=None, model_data=True):
        updates.append((buffer, model_data))
        return original_update(self, buffer, batch_size, updates_made, logger, model_data)

    monkeypatch.setattr(algorithm, "BoundRun", RecordedRun)
    monkeypatch.setattr(BoundSACAgent, "update", update)
    env, term_fn, _ = make_env(cfg)
    test_env, *_ = make_env(cfg)
    train(env, test_env, term_fn, cfg, silent=True, work_dir=str(tmp_path))
    (run,) = runs
    real = [model_data for buffer, model_data in updates if buffer is run.replay_buffer]
    imagined = [model_data for buffer, model_data in updates if buffer is not run.replay_buffer]
    assert real and imagined
    assert not any(real) and all(imagined)
    # results.csv logs the last discriminator step's statistics, and the warm-up is told
    with open(tmp_path / "results.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert {k: float(row[k]) for k in DISC_STATS} == run.disc_stats
    _check_disc_columns(row)
    assert run.agent.epochs_done == run.epoch == 1


def _train_recorded(cfg, work_dir: pathlib.Path, monkeypatch, silent: bool = True) -> BoundRun:
    """``train`` in-process; returns the run it built."""
    runs = []

    class RecordedRun(BoundRun):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            runs.append(self)

    monkeypatch.setattr(algorithm, "BoundRun", RecordedRun)
    env, term_fn, _ = make_env(cfg)
    test_env, *_ = make_env(cfg)
    train(env, test_env, term_fn, cfg, silent=silent, work_dir=str(work_dir))
    (run,) = runs
    return run


# --- SAC's buffer scored as it fills and when C changes; SAC reads the stored logits ---

# 2 epochs of 50 steps, a model training and discriminator step every 25 steps (250
# rollouts each, in a buffer of 500: the rows of the previous rollouts stay through the
# next discriminator step), 4 SAC updates of 32 rows per step; checkpoints at 50 and 100
SCORED_RUN = (
    "overrides.num_steps=100",
    "overrides.epoch_length=50",
    "overrides.freq_train_model=25",
    "overrides.num_sac_updates_per_step=4",
    "checkpoint.keep=2",
    "log_frequency_agent=20",  # (train.csv: SAC's losses every 20 updates)
)
LOGS = ("results.csv", "train.csv", "model_train.csv")


def _numbers(path: pathlib.Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return list(rows[0]), np.array([[float(v) for v in row.values()] for row in rows])


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory, one_torch_thread) -> tuple[BoundRun, dict, pathlib.Path]:
    """The run of ``SCORED_RUN``, and what it scored, added and sampled."""
    counts = {
        "added": 0,
        "rescored": [],
        "invalidated": [],
        "stale_scored": [],
        "sac_rows": 0,
        "calls_in_sac": 0,
    }
    in_sac = [0]  # inside a step's SAC phase (drawing its batches ahead, or an update)
    in_stale = [False]  # scoring the rows left stale since C changed
    originals = (
        ScoredReplayBuffer.add_batch,
        ScoredReplayBuffer.rescore,
        BoundSACAgent.update,
        Discriminator.forward,
        BoundSACAgent.batches_ahead,
        ScoredReplayBuffer.invalidate,
        ScoredReplayBuffer.score_stale,
    )

    def invalidate(self):
        counts["invalidated"].append(len(self))
        return originals[5](self)

    def score_stale(self):
        stale = int(self.stale[: len(self)].sum())
        if stale:
            counts["stale_scored"].append(stale)
        in_stale[0] = True
        try:
            return originals[6](self)
        finally:
            in_stale[0] = False

    def add_batch(self, obs, *args):
        counts["added"] += len(obs)
        return originals[0](self, obs, *args)

    def rescore(self):
        counts["rescored"].append(len(self))
        return originals[1](self)

    def update(self, buffer, batch_size, *args, model_data=True, **kwargs):
        counts["sac_rows"] += batch_size if model_data else 0
        in_sac[0] += 1
        try:
            return originals[2](self, buffer, batch_size, *args, model_data=model_data, **kwargs)
        finally:
            in_sac[0] -= 1

    @contextlib.contextmanager
    def batches_ahead(self, *args):
        in_sac[0] += 1
        try:
            with originals[4](self, *args):
                yield
        finally:
            in_sac[0] -= 1

    def forward(self, *args):
        counts["calls_in_sac"] += in_sac[0] > 0 and not in_stale[0]
        return originals[3](self, *args)

    work_dir = tmp_path_factory.mktemp("scored")
    with pytest.MonkeyPatch.context() as mp:
        for name, fn in (
            ("add_batch", add_batch),
            ("rescore", rescore),
            ("invalidate", invalidate),
            ("score_stale", score_stale),
        ):
            mp.setattr(ScoredReplayBuffer, name, fn)
        mp.setattr(BoundSACAgent, "update", update)
        mp.setattr(BoundSACAgent, "batches_ahead", batches_ahead)
        mp.setattr(Discriminator, "forward", forward)
        run = _train_recorded(_tiny_bound_cfg(*SCORED_RUN), work_dir, mp, silent=False)
    return run, counts, work_dir


def _assert_logits_are_cs(buffer: ScoredReplayBuffer, discriminator: Discriminator) -> None:
    rows = buffer.get_all()
    with torch.no_grad():
        fresh = discriminator(*(torch.as_tensor(x) for x in (rows.obs, rows.act, rows.next_obs)))
    stored = torch.from_numpy(buffer.logits[: len(buffer)])
    assert torch.allclose(stored, fresh, atol=1e-6)
    assert fresh.abs().max() > 0.1  # (a fitted C: the comparison is not between zeros)


def test_sac_reads_stored_logits_and_c_scores_rows_as_they_come_and_when_it_changes(scored_run):
    run, counts, _ = scored_run
    buffer = run.sac_buffer
    assert isinstance(buffer, ScoredReplayBuffer)
    # no discriminator call in any SAC update but to score the rows left stale
    assert counts["calls_in_sac"] == 0
    # scored: each row added (every rollout came after a discriminator step), the rows
    # in the buffer when it was made (none), and after each discriminator step the rows
    # the following rollout did not overwrite (250 of 500 once the buffer is full)
    assert counts["added"] == 4 * 250 and counts["rescored"] == [0]
    assert counts["invalidated"] == [0, 250, 500, 500]
    assert counts["stale_scored"] == [250, 250, 250]  # not the 1250 rows invalidated
    assert buffer.rows_scored == counts["added"] + sum(counts["stale_scored"])
    # far fewer than SAC reads: 76 steps of 4 updates of 32 model rows
    assert counts["sac_rows"] == 76 * 4 * 32
    assert buffer.rows_scored * 4 < counts["sac_rows"]
    _assert_logits_are_cs(buffer, run.discriminator)


def test_the_run_is_the_one_that_calls_c_on_every_sac_batch(
    scored_run, tmp_path, monkeypatch, one_torch_thread
):
    """Without the stored logits (mbrl's buffer, C called on each step's batches) the same
    seed gives the same run: the same rows drawn, the same rewards up to rounding."""
    run, _, work_dir = scored_run
    monkeypatch.setattr(BoundRun, "scored_sac_buffer", lambda self, buffer: buffer)
    uncached = _train_recorded(_tiny_bound_cfg(*SCORED_RUN), tmp_path, monkeypatch, False)
    assert type(uncached.sac_buffer) is mbrl.util.ReplayBuffer
    for name in LOGS:
        header, cached_values = _numbers(work_dir / name)
        assert _numbers(tmp_path / name)[0] == header
        np.testing.assert_allclose(
            _numbers(tmp_path / name)[1], cached_values, rtol=1e-4, atol=1e-6, err_msg=name
        )
    _, results = _numbers(work_dir / "results.csv")
    assert len(results) == 2 and np.isfinite(results).all()
    np.testing.assert_allclose(
        uncached.sac_buffer.get_all().obs, run.sac_buffer.get_all().obs, rtol=1e-4, atol=1e-6
    )


def test_a_run_resumed_from_its_checkpoint_scores_its_buffer_as_the_uninterrupted_one(
    scored_run, tmp_path, monkeypatch, one_torch_thread
):
    run, _, work_dir = scored_run
    (tmp_path / "checkpoints").mkdir()
    checkpoint = work_dir / "checkpoints" / "step_000000050.ckpt"
    shutil.copy(checkpoint, tmp_path / "checkpoints")
    # what a resumed run loads at step 50: the buffer and its logits, those of the
    # restored C; a checkpoint without them (a plain buffer's) is scored on loading
    state = load_checkpoint(checkpoint)["run"]
    cfg = _tiny_bound_cfg(*SCORED_RUN)
    env, term_fn, _ = make_env(cfg)
    test_env, *_ = make_env(cfg)
    loaded = {}
    for logits_saved in (True, False):
        if not logits_saved:
            del state["sac_buffer"]["logits"]
        fresh = BoundRun(env, test_env, term_fn, cfg, str(tmp_path / "fresh"), silent=True)
        fresh.load_state_dict(state)
        buffer = fresh.sac_buffer
        assert isinstance(buffer, ScoredReplayBuffer) and len(buffer) == 500
        assert buffer.rows_scored == (0 if logits_saved else 500)
        _assert_logits_are_cs(buffer, fresh.discriminator)
        loaded[logits_saved] = buffer.logits.copy()
    # (the uninterrupted run scored them 250 at a time: the same up to rounding)
    np.testing.assert_allclose(loaded[False], loaded[True], rtol=1e-5, atol=1e-6)
    # resumed to the end: the uninterrupted run's logs and final logits
    cfg = _tiny_bound_cfg(*SCORED_RUN, "resume=true")
    resumed = _train_recorded(cfg, tmp_path, monkeypatch, silent=False)
    assert resumed.env_steps == 100
    for name in LOGS:
        assert (tmp_path / name).read_bytes() == (work_dir / name).read_bytes(), name
    np.testing.assert_array_equal(resumed.sac_buffer.logits, run.sac_buffer.logits)


# --- one run, built in-process: exploration, a model training, a discriminator step ---


def _train_model(run: BoundRun) -> None:
    mbrl.util.common.train_model_and_save_model_and_data(
        run.dynamics_model,
        run.model_trainer,
        run.cfg.overrides,
        run.replay_buffer,
        work_dir=run.work_dir,
    )


@pytest.fixture(scope="module")
def prepared_run(tmp_path_factory, one_torch_thread) -> BoundRun:
    """A run after exploration, one model training and one discriminator step, whose SAC
    has taken a real and a model update (so every optimizer has a state). The model step
    is that of ``beta`` (``optimism.method=none``)."""
    cfg = _tiny_bound_cfg("algorithm.optimism.method=none")
    torch.manual_seed(0)
    env, term_fn, _ = make_env(cfg)
    test_env, *_ = make_env(cfg)
    run = BoundRun(env, test_env, term_fn, cfg, str(tmp_path_factory.mktemp("run")), silent=True)
    run.explore()
    _train_model(run)  # (no critics yet: mbrl's own training)
    stats = discriminator_step(
        run.discriminator,
        run.model_env,
        run.replay_buffer,
        cfg.algorithm.disc_max_rows,
        run.disc_generator,
    )
    run.use_discriminator(stats)
    for i, model_data in enumerate((False, True)):
        run.agent.update(run.replay_buffer, 32, i, None, model_data=model_data)
    run.dynamics_model.pop_bound_stats()
    return run


def _snapshot(run: BoundRun) -> dict:
    sac = run.agent.sac_agent
    modules = {
        "discriminator": run.discriminator,
        "policy": sac.policy,
        "critic": sac.critic,
        "critic_target": sac.critic_target,
    }
    optimizers = {
        "discriminator": run.discriminator.optimizer,
        "policy": sac.policy_optim,
        "critic": sac.critic_optim,
        "alpha": sac.alpha_optim,
    }
    snap = {"log_alpha": sac.log_alpha.detach().clone()}
    for name, module in modules.items():
        snap[name] = {k: v.detach().clone() for k, v in module.state_dict().items()}
        snap[name + ".grad"] = [
            None if p.grad is None else p.grad.clone() for p in module.parameters()
        ]
        snap[name + ".requires_grad"] = [p.requires_grad for p in module.parameters()]
    for name, opt in optimizers.items():
        snap[name + ".optimizer"] = copy.deepcopy(opt.state_dict())
    return snap


def _assert_same(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_a_model_step_in_train_leaves_discriminator_and_sac_untouched(prepared_run):
    run = prepared_run
    # every optimizer has a state to lose (the check is not between empty states)
    assert run.discriminator.optimizer.state and run.agent.sac_agent.policy_optim.state
    before = _snapshot(run)
    model_before = {k: v.clone() for k, v in run.dynamics_model.state_dict().items()}
    _train_model(run)  # the model step of train(): NLL + beta * bound term, C and V frozen
    stats = run.dynamics_model.pop_bound_stats()
    # the critics were used (C, g and V all reached the model) ...
    used = ("model_nll", "bound_term", "bound_logit", "bound_value")
    assert all(stats[k] != 0.0 and math.isfinite(stats[k]) for k in used), stats
    assert stats["bound_value_clamped"] == 0.0  # the clamp is off by default
    assert any(
        not torch.equal(v, run.dynamics_model.state_dict()[k]) for k, v in model_before.items()
    )
    # ... and nothing of theirs moved: parameters, buffers, gradients, optimizer states
    _assert_same(before, _snapshot(run))


def test_the_model_step_reads_the_policys_current_ratio_term(prepared_run):
    run, agent = prepared_run, prepared_run.agent
    model = run.dynamics_model
    batch = run.replay_buffer.get_all()[:64]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # (leaves the model as it is)
    _, meta = model.update(batch, optimizer)
    limit = agent.ratio_weight() * agent.clip * len(model.model)  # |g| <= w c, per member
    assert 0.0 < abs(meta["bound_logit"]) <= limit
    agent.warmup_epochs, agent.epochs_done = 2, 0  # the policy's weight is now 0 ...
    try:
        _, meta = model.update(batch, optimizer)
    finally:
        agent.warmup_epochs, agent.epochs_done = 0, 0
    assert meta["bound_logit"] == 0.0  # ... and so is the model's ratio term
    assert meta["bound_term"] == pytest.approx(-meta["bound_value"])
    model.pop_bound_stats()


def test_the_model_step_counts_no_value_after_the_tasks_terminal_states(prepared_run):
    model = prepared_run.dynamics_model
    batch = prepared_run.replay_buffer.get_all()[:64]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    _, meta = model.update(batch, optimizer)
    assert meta["bound_value"] != 0.0
    # InvertedPendulum ends when the pole is past 0.2 rad: from 5 rad, every ŝ' is terminal
    obs = batch.obs.copy()
    obs[:, 1] = 5.0
    fallen = mbrl.types.TransitionBatch(
        obs, batch.act, obs, batch.rewards, batch.terminateds, batch.truncateds
    )
    _, meta = model.update(fallen, optimizer)
    assert meta["bound_value"] == 0.0 and meta["bound_logit"] != 0.0
    model.pop_bound_stats()


def test_discriminator_step_draws_distinct_rows_for_the_elite_members_only(
    prepared_run, monkeypatch
):
    run = prepared_run
    ensemble = run.dynamics_model.model
    num_elites = run.cfg.overrides.num_elites
    assert len(ensemble) == 3 and len(ensemble.elite_models) == num_elites == 2
    (other,) = set(range(3)) - set(ensemble.elite_models)
    seen = {}

    def fit(obs, act, next_obs, model_next_obs, generator=None):
        seen.update(obs=obs, act=act, next_obs=next_obs, model_next_obs=model_next_obs)
        return {"disc_loss": 0.0}

    monkeypatch.setattr(run.discriminator, "fit", fit)
    bias = ensemble.mean_and_logvar.bias
    saved = bias.detach().clone()
    try:
        with torch.no_grad():  # the one non-elite member now predicts a change of 1000
            bias[other, :, : run.obs_shape[0]] += 1000.0
        # 99 of the 100 rows: a multiple of the 2 elites (mbrl's random_model needs it)
        discriminator_step(
            run.discriminator, run.model_env, run.replay_buffer, 99, run.disc_generator
        )
    finally:
        with torch.no_grad():
            bias.copy_(saved)
    obs, act, next_obs = seen["obs"], seen["act"], seen["next_obs"]
    assert len(obs) == 98
    assert len(np.unique(obs, axis=0)) == 98  # drawn without replacement
    # each (s, a, s') is a transition of the replay buffer, kept together
    data = run.replay_buffer.get_all()
    buffer_obs = data.obs.astype(np.float32)  # (the model and C read float32)
    for i in range(len(obs)):
        (j,) = np.flatnonzero((buffer_obs == obs[i]).all(1))
        np.testing.assert_array_equal(data.act[j].astype(np.float32), act[i])
        np.testing.assert_array_equal(data.next_obs[j], next_obs[i])
    # the model's s' comes from the elites only
    assert np.abs(seen["model_next_obs"] - obs).max() < 100.0


@pytest.mark.parametrize(
    "ablation, model_term, policy_term",
    [
        ("bound", True, True),
        ("bound_no_model_term", False, True),
        ("bound_no_policy_term", True, False),
    ],
)
def test_each_ablation_turns_off_its_own_term_only(
    ablation, model_term, policy_term, tmp_path, monkeypatch, one_torch_thread
):
    """bound_no_model_term: C relabels SAC's batches, the model loss has no bound term;
    bound_no_policy_term: the model step climbs the ratio term, SAC never calls C."""
    cfg = _tiny_bound_cfg(  # (the model term of beta: optimism.method=none)
        f"algorithm={ablation}",
        "overrides.num_steps=100",
        "overrides.freq_train_model=50",
        "algorithm.optimism.method=none",
    )
    assert cfg.algorithm.name == ablation
    calls = {"sac": 0, "model": 0}
    original_logits, original_ratio = BoundSACAgent.logits, BoundSACAgent.ratio_term

    def logits(self, *args):
        calls["sac"] += 1
        return original_logits(self, *args)

    def ratio_term(self, logit):
        calls["model"] += logit.requires_grad or logit.grad_fn is not None
        return original_ratio(self, logit)

    monkeypatch.setattr(BoundSACAgent, "logits", logits)
    monkeypatch.setattr(BoundSACAgent, "ratio_term", ratio_term)
    run = _train_recorded(cfg, tmp_path, monkeypatch)
    assert (calls["model"] > 0) == model_term
    assert (calls["sac"] > 0) == policy_term  # (C scoring SAC's buffer)
    # only SAC on the ratio term keeps its rows' logits; the ablation keeps mbrl's buffer
    assert isinstance(run.sac_buffer, ScoredReplayBuffer) == policy_term
    if not policy_term:
        assert type(run.sac_buffer) is mbrl.util.ReplayBuffer
    with open(tmp_path / "results.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    _check_disc_columns(row)  # the discriminator is fitted in every arm


@pytest.mark.slow
def test_bound_with_budgeted_optimism_trains_its_model_by_nll_alone(run_cli, results):
    proc = run_cli(
        "algorithm=bound",
        "overrides=mbpo_inv_pendulum_v5",
        *TINY_BOUND,
        "algorithm.optimism.method=mean_shift",
        "algorithm.optimism.kl_budget=0.2",
        "algorithm.bound_agent.ratio_centering=true",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "the model is trained by NLL alone" in proc.stdout + proc.stderr
    for row in results():
        assert 0.0 < float(row["optimism_kl"]) <= 0.2 + 1e-6
        assert float(row["optimism_eta"]) > 0.0
        assert math.isfinite(float(row["optimism_value_gain"]))
        _check_disc_columns(row)  # the discriminator still serves the policy's ratio term
    # no bound term in the model loss, also after the discriminator's first step: its
    # columns stay empty, beside the NLL
    for row in results("model_train"):
        assert math.isnan(float(row["bound_term"])) and math.isfinite(float(row["model_nll"]))
