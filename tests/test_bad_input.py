"""Bad input is refused before anything runs: one line naming the key, exit code 2.

Most inputs go through :func:`mbrl_bound_plugin.cli.main.preflight`, the function the command
runs before Hydra starts (in-process: fast), and through :func:`mbrl_bound_plugin.compose`,
which must refuse the same input with the same message. A handful go through the real
``mbrl-bound`` command, in a subprocess with a timeout, so that a hang (mbrl's epoch loop
with ``overrides.epoch_length=0``) fails the test instead of blocking it.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import mbrl_bound_conf_dir
from mbrl_bound_plugin.cli.main import preflight
from mbrl_bound_plugin.config.composition import (
    MAX_CHECKED_JOBS,
    check_config,
    compose,
    quiet_config_warnings,
    sweep_jobs,
)
from mbrl_bound_plugin.env.factory import make_env
from mbrl_bound_plugin.errors import UsageError

MBPO = ["algorithm=mbpo", "overrides=mbpo_inv_pendulum_v5"]
BOUND = ["algorithm=bound", "overrides=mbpo_inv_pendulum_v5"]
RESUMABLE = ["algorithm=mbpo_resumable", "overrides=mbpo_inv_pendulum_v5"]
PETS = ["algorithm=pets", "overrides=pets_inv_pendulum_v5"]
TIMEOUT_S = 60  # a CLI call that takes longer has hung (each takes a few seconds)

# (command line, fragments of the one-line message: the key first)
BAD_INPUT = {
    # --- loops that hang in mbrl ---
    "mbpo epoch_length=0": (MBPO + ["overrides.epoch_length=0"], ["overrides.epoch_length=0"]),
    "bound epoch_length=0": (BOUND + ["overrides.epoch_length=0"], ["overrides.epoch_length=0"]),
    "mbpo exploration=0": (
        MBPO + ["algorithm.initial_exploration_steps=0"],
        ["algorithm.initial_exploration_steps=0", "integer >= 1"],
    ),
    "resumable exploration<0": (
        RESUMABLE + ["algorithm.initial_exploration_steps=-1"],
        ["algorithm.initial_exploration_steps=-1"],
    ),
    "mbpo model_batch_size=0": (
        MBPO + ["overrides.model_batch_size=0"],
        ["overrides.model_batch_size=0", "integer >= 1"],
    ),
    "pets model_batch_size=0": (
        PETS + ["overrides.model_batch_size=0"],
        ["overrides.model_batch_size=0"],
    ),
    "pets trial_length=0": (  # PETS explores for trial_length steps
        PETS + ["overrides.trial_length=0"],
        ["overrides.trial_length=0", "integer >= 1"],
    ),
    "mbpo patience=0, no epoch limit": (
        MBPO + ["overrides.patience=0"],
        ["overrides.patience=0", "+overrides.num_epochs_train_model=N"],
    ),
    # --- divisions by zero and crashes in mbrl ---
    "mbpo freq_train_model=0": (
        MBPO + ["overrides.freq_train_model=0"],
        ["overrides.freq_train_model=0"],
    ),
    "pets freq_train_model=0": (  # (read as algorithm.freq_train_model: the source is named)
        PETS + ["overrides.freq_train_model=0"],
        ["overrides.freq_train_model=0"],
    ),
    "mbpo num_steps<0": (MBPO + ["overrides.num_steps=-5"], ["overrides.num_steps=-5"]),
    "pets num_steps=0": (PETS + ["overrides.num_steps=0"], ["overrides.num_steps=0"]),
    "mbpo num_steps float": (MBPO + ["overrides.num_steps=1e3"], ["overrides.num_steps=1000.0"]),
    "mbpo sac_updates_every_steps=0": (
        MBPO + ["overrides.sac_updates_every_steps=0"],
        ["overrides.sac_updates_every_steps=0"],
    ),
    "mbpo retain_sac_buffer=0": (
        MBPO + ["overrides.num_epochs_to_retain_sac_buffer=0"],
        ["overrides.num_epochs_to_retain_sac_buffer=0"],
    ),
    "mbpo rollouts_per_step=0": (
        MBPO + ["overrides.effective_model_rollouts_per_step=0"],
        ["overrides.effective_model_rollouts_per_step=0"],
    ),
    "resumable sac_batch_size=0": (
        RESUMABLE + ["overrides.sac_batch_size=0"],
        ["overrides.sac_batch_size=0"],
    ),
    "bound sac_updates<0": (
        BOUND + ["overrides.num_sac_updates_per_step=-1"],
        ["overrides.num_sac_updates_per_step=-1", "integer >= 0"],
    ),
    "mbpo num_eval_episodes=0": (
        MBPO + ["algorithm.num_eval_episodes=0"],
        ["algorithm.num_eval_episodes=0"],
    ),
    "mbpo log_frequency_agent=0": (MBPO + ["log_frequency_agent=0"], ["log_frequency_agent=0"]),
    "mbpo model_lr<0": (MBPO + ["overrides.model_lr=-0.001"], ["overrides.model_lr=-0.001"]),
    "pets model_wd<0": (PETS + ["overrides.model_wd=-1"], ["overrides.model_wd=-1"]),
    "mbpo validation_ratio=1": (
        MBPO + ["overrides.validation_ratio=1"],
        ["overrides.validation_ratio=1", "[0, 1)"],
    ),
    "pets validation_ratio<0": (
        PETS + ["overrides.validation_ratio=-0.1"],
        ["overrides.validation_ratio=-0.1"],
    ),
    "mbpo real_data_ratio>1": (
        MBPO + ["algorithm.real_data_ratio=1.5"],
        ["algorithm.real_data_ratio=1.5", "[0, 1]"],
    ),
    "bound rollout_schedule of 3": (
        BOUND + ["overrides.rollout_schedule=[1,15,1]"],
        ["overrides.rollout_schedule=[1, 15, 1]", "4 numbers"],
    ),
    "mbpo rollout length<0": (
        MBPO + ["overrides.rollout_schedule=[1,15,-1,4]"],
        ["overrides.rollout_schedule=", "lengths are >= 0"],
    ),
    "mbpo dataset_size<0": (
        MBPO + ["+algorithm.dataset_size=-1"],
        ["algorithm.dataset_size=-1"],
    ),
    # --- the model ensemble ---
    "mbpo num_elites>ensemble": (
        MBPO + ["overrides.num_elites=9"],
        ["overrides.num_elites=9", "dynamics_model.ensemble_size=7"],
    ),
    "bound ensemble_size=0": (
        BOUND + ["dynamics_model.ensemble_size=0"],
        ["dynamics_model.ensemble_size=0"],
    ),
    "mbpo rollouts not a multiple of the elites": (  # 400 x 250 rollouts, 3 models
        MBPO + ["dynamics_model.ensemble_size=3", "overrides.num_elites=3"],
        ["overrides.effective_model_rollouts_per_step=400", "dynamics_model.ensemble_size=3"],
    ),
    "pets particles not a multiple of the elites": (  # 480 x 3 samples, 7 elites
        PETS + ["algorithm.num_particles=3", "overrides.num_elites=7"],
        ["overrides.cem_population_size=480", "algorithm.num_particles=3", "7 elite"],
    ),
    "mbpo propagation": (
        MBPO + ["dynamics_model.propagation_method=nope"],
        ["dynamics_model.propagation_method='nope'", "random_model"],
    ),
    # --- PETS' planner ---
    "pets planning_horizon=0": (
        PETS + ["overrides.planning_horizon=0"],
        ["overrides.planning_horizon=0"],
    ),
    "pets num_particles=0": (PETS + ["algorithm.num_particles=0"], ["algorithm.num_particles=0"]),
    "pets population=0": (
        PETS + ["overrides.cem_population_size=0"],
        ["overrides.cem_population_size=0"],
    ),
    "pets elite_ratio=0": (
        PETS + ["overrides.cem_elite_ratio=0"],
        ["overrides.cem_elite_ratio=0", "(0, 1]"],
    ),
    "pets no elite": (
        PETS + ["overrides.cem_elite_ratio=0.001"],
        ["overrides.cem_elite_ratio=0.001", "0 elites"],
    ),
    # --- seed, resume, device, checkpoints ---
    "mbpo seed=abc": (MBPO + ["seed=abc"], ["seed='abc'", "e.g. seed=0"]),
    "pets seed<0": (PETS + ["seed=-1"], ["seed=-1"]),
    "resumable seed float": (RESUMABLE + ["seed=1.5"], ["seed=1.5"]),
    "pets resume=maybe": (PETS + ["resume=maybe"], ["resume='maybe'", "true, false or auto"]),
    "mbpo resume=maybe": (MBPO + ["resume=maybe"], ["resume='maybe'"]),
    "resumable resume=maybe": (RESUMABLE + ["resume=maybe"], ["resume='maybe'"]),
    "mbpo resume=true": (MBPO + ["resume=true"], ["resume=true needs algorithm=bound"]),
    "mbpo device=cuda:abc": (MBPO + ["device=cuda:abc"], ["device='cuda:abc'", "cuda:N"]),
    "pets device=tpu": (PETS + ["device=tpu"], ["device='tpu'"]),
    "bound checkpoint.keep=0": (BOUND + ["checkpoint.keep=0"], ["checkpoint.keep=0"]),
    "resumable every_epochs=0": (
        RESUMABLE + ["checkpoint.every_epochs=0"],
        ["checkpoint.every_epochs=0"],
    ),
    # --- the bound's own settings (also checked when the run builds its parts) ---
    "bound beta<0": (BOUND + ["algorithm.model_wrapper.beta=-1"], ["beta must be >= 0"]),
    "bound lam<0": (BOUND + ["algorithm.bound_agent.lam=-1"], ["lam must be >= 0"]),
    "bound mode without floor": (
        BOUND + ["algorithm.bound_agent.mode=bound"],
        ["algorithm.bound_agent", "needs reward_floor"],
    ),
    "bound scale unknown": (
        BOUND + ["algorithm.bound_agent.scale=huge"],
        ["algorithm.bound_agent.scale='huge'", "use one of none, reward_std, reward_rms"],
    ),
    "bound warmup fraction": (
        BOUND + ["algorithm.bound_agent.warmup_epochs=1.5"],
        ["algorithm.bound_agent.warmup_epochs=1.5: use an integer"],
    ),
    "bound ratio_centering text": (
        BOUND + ["algorithm.bound_agent.ratio_centering=maybe"],
        ["algorithm.bound_agent.ratio_centering='maybe'", "true or false"],
    ),
    "bound optimism method unknown": (
        BOUND + ["algorithm.optimism.method=greedy"],
        ["algorithm.optimism.method='greedy'", "one of none, mean_shift, resample"],
    ),
    "bound optimism budget<0": (
        BOUND + ["algorithm.optimism.kl_budget=-0.1"],
        ["algorithm.optimism", "kl_budget must be a number >= 0"],
    ),
    "bound discriminator batch 0": (
        BOUND + ["discriminator.batch_size=0"],
        ["discriminator.batch_size must be an integer >= 1, got 0"],
    ),
    "bound discriminator lr text": (
        BOUND + ["discriminator.lr=fast"],
        ["discriminator.lr='fast': use a number"],
    ),
    # --- environment, termination and reward functions ---
    "mbpo unknown term_fn": (
        MBPO + ["overrides.term_fn=no_such_fn"],
        ["overrides.term_fn='no_such_fn'", "no_termination"],
    ),
    "mbpo term_fn near miss": (
        MBPO + ["overrides.term_fn=inverted_pendulm"],
        ["overrides.term_fn='inverted_pendulm'", "did you mean 'inverted_pendulum'?"],
    ),
    "bound term_fn path": (
        BOUND + ["overrides.term_fn=no_such_package.done"],
        ["overrides.term_fn='no_such_package.done'", "not an importable function"],
    ),
    "pets unknown reward_fn": (
        PETS + ["+overrides.reward_fn=nope"],
        ["overrides.reward_fn='nope'", "inverted_pendulum"],
    ),
    "mbpo env_cfg target": (
        MBPO + ["+overrides.env_cfg._target_=nosuch.Env"],
        ["overrides.env_cfg._target_='nosuch.Env'", "No module named 'nosuch'"],
    ),
    "mbpo unknown gymnasium id": (
        MBPO + ["overrides.env=gym___Nope-v0"],
        ["unknown gymnasium env id 'Nope-v0'", "overrides.env="],
    ),
    "mbpo gymnasium id near miss": (
        MBPO + ["overrides.env=gym___InvertedPendulum-v55"],
        ["overrides.env='gym___InvertedPendulum-v55'", "did you mean gym___InvertedPendulum-v5"],
    ),
    "pets unknown env name": (
        PETS + ["overrides.env=no_such_env"],
        ["overrides.env='no_such_env'", "gym___"],
    ),
    # --- keys Hydra cannot apply ---
    "mbpo misspelt key": (
        MBPO + ["overrides.num_stepz=10"],
        ["'overrides.num_stepz'", "did you mean overrides.num_steps?", "+overrides.num_stepz=10"],
    ),
    "pets misspelt group key": (
        PETS + ["override.num_steps=10"],
        ["'override.num_steps'", "did you mean overrides.num_steps?"],
    ),
    "mbpo optional key without +": (
        MBPO + ["algorithm.dataset_size=5"],
        ["'algorithm.dataset_size'", "+algorithm.dataset_size=5 adds it"],
    ),
    "bound delete a missing key": (
        BOUND + ["~overrides.num_stepz"],
        ["'overrides.num_stepz'", "did you mean ~overrides.num_steps?"],
    ),
    "mbpo + on an existing key": (
        MBPO + ["+overrides.num_steps=5"],
        ["overrides.num_steps is already set", "overrides.num_steps=5"],
    ),
    "resumable overrides of PETS": (
        ["algorithm=mbpo_resumable", "overrides=pets_cartpole"],
        ["overrides=pets_cartpole lacks key", "algorithm=mbpo_resumable"],
    ),
    # --- sweeps ---
    "sweep without -m": (MBPO + ["seed=0,1"], ["seed=0,1 is a sweep", "add -m"]),
    "a bad job in a sweep": (
        ["-m", *MBPO, "overrides.epoch_length=100,0"],
        ["overrides.epoch_length=0", "in the job overrides.epoch_length=0"],
    ),
    "a sweep over overrides= with a plain key only its choices have": (
        [
            "-m",
            "algorithm=mbpo",
            "overrides=mbpo_inv_pendulum_v5,mbpo_mountain_car",
            "overrides.epoch_length=100",
        ],
        [
            "overrides.epoch_length=100: with -m",
            "overrides's default choice",
            "write ++overrides.epoch_length=100",
        ],
    ),
    "a bad job in a glob sweep": (
        ["-m", "algorithm=glob(*,exclude=planet)", "overrides=mbpo_inv_pendulum_v5"],
        [
            "overrides=mbpo_inv_pendulum_v5 cannot serve algorithm=pets",
            "(in the job algorithm=pets)",
        ],
    ),
}
# (compose() refuses sweeps in its own words: it has no -m)
SINGLE_RUNS = {name: case for name, case in BAD_INPUT.items() if "sweep" not in name}


def _out(tmp_path: pathlib.Path) -> list[str]:
    """Output directories in tmp_path, given to every command line."""
    return [
        f"root_dir={tmp_path / 'exp'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]


def test_at_least_twenty_bad_inputs_across_the_algorithms():
    assert len(BAD_INPUT) >= 20
    for algorithm in ("mbpo", "bound", "mbpo_resumable", "pets"):
        assert any(f"algorithm={algorithm}" in argv for argv, _ in BAD_INPUT.values()), algorithm


@pytest.mark.parametrize("argv, fragments", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_preflight_refuses_in_one_line_naming_the_key(argv, fragments, tmp_path):
    with pytest.raises(UsageError) as err:
        preflight([*argv, *_out(tmp_path)])
    message = str(err.value)
    assert "\n" not in message and len(message) < 400, message
    for fragment in fragments:
        assert fragment in message, message
    assert not any(tmp_path.iterdir()), "preflight wrote something"


@pytest.mark.parametrize("argv, fragments", SINGLE_RUNS.values(), ids=SINGLE_RUNS.keys())
def test_compose_refuses_the_same_input_with_the_same_message(argv, fragments, tmp_path):
    with pytest.raises(UsageError) as by_preflight:
        preflight([*argv, *_out(tmp_path)])
    with pytest.raises(UsageError) as by_compose:
        compose([*argv, *_out(tmp_path)])
    assert str(by_compose.value) == str(by_preflight.value)


@pytest.mark.parametrize(
    "argv",
    [
        MBPO + ["overrides.num_sac_updates_per_step=0"],  # a model-only run
        MBPO + ["algorithm.real_data_ratio=1"],  # SAC on real data only
        MBPO + ["overrides.rollout_schedule=[1,15,0,0]", "algorithm.real_data_ratio=1"],
        MBPO + ["overrides.num_elites=0", "dynamics_model.ensemble_size=5"],  # 0: all models
        MBPO + ["overrides.validation_ratio=0"],
        MBPO + ["overrides.patience=0", "+overrides.num_epochs_train_model=5"],
        MBPO + ["+overrides.num_epochs_train_model=0"],  # 0: until patience
        MBPO + ["overrides.epoch_length=50", "overrides.freq_train_model=100"],
        BOUND + ["seed=null", "resume=auto", "algorithm.model_wrapper.beta=0"],
        BOUND + ["algorithm.bound_agent.mode=bound", "algorithm.bound_agent.reward_floor=-1"],
        RESUMABLE + ["resume=true"],  # (whether a checkpoint exists is checked in the run)
        PETS + ["resume=auto", "overrides.cem_num_iters=0", "algorithm.num_particles=1"],
        PETS + ["+overrides.reward_fn=inverted_pendulum"],
        ["algorithm=pets", "overrides=pets_point_maze"],
        ["algorithm=mbpo", "overrides=mbpo_point_maze"],
        ["-m", "algorithm=mbpo,bound,mbpo_resumable", "overrides=mbpo_inv_pendulum_v5"],
        ["-m", *PETS, "seed=range(3)", "overrides.planning_horizon=5,10"],
    ],
)
def test_working_values_are_accepted(argv, tmp_path):
    preflight([*argv, *_out(tmp_path)])
    if "-m" not in argv:
        compose(argv)
    assert not any(tmp_path.iterdir())


def _hydra(overrides: list[str]):
    with (
        quiet_config_warnings(),
        initialize_config_dir(version_base="1.1", config_dir=str(mbrl_bound_conf_dir())),
    ):
        return hydra_compose(config_name="main", overrides=overrides)


def test_the_run_checks_again_what_preflight_checked():
    """A launcher runs the task in another process: the run checks the config itself."""
    cfg = _hydra(MBPO + ["overrides.epoch_length=0"])
    with pytest.raises(UsageError, match=r"overrides\.epoch_length=0"):
        check_config(cfg)
    cfg = compose(MBPO)
    cfg.overrides.term_fn = "no_such_fn"
    with pytest.raises(UsageError, match="overrides.term_fn='no_such_fn'"):
        make_env(cfg)


@pytest.mark.parametrize(
    "argv",
    [
        ["algorithm=bound,mbpo", "seed=0,1,2", "overrides=mbpo_inv_pendulum_v5"],
        ["algorithm=choice(bound,mbpo)", "seed=range(2)", "+x=a", "seed=5,6"],
        ["~overrides.patience", "algorithm=pets"],
    ],
)
def test_sweep_jobs_are_the_jobs_of_hydras_basic_sweeper(argv):
    parsed = OverridesParser.create().parse_overrides(argv)
    assert sweep_jobs(parsed) == BasicSweeper.split_arguments(parsed, None)[0]


def test_sweep_jobs_expand_a_glob_over_a_config_group():
    parsed = OverridesParser.create().parse_overrides(["algorithm=glob(mbpo*)", "seed=1,2"])
    jobs = sweep_jobs(parsed)
    assert [job[0] for job in jobs[::2]] == ["algorithm=mbpo", "algorithm=mbpo_resumable"]
    assert len(jobs) == 4


def test_a_large_sweep_checks_every_swept_value_once():
    argv = ["seed=range(100)", "overrides.num_steps=range(1,11)", "algorithm=bound,mbpo"]
    assert 100 * 10 * 2 > MAX_CHECKED_JOBS
    jobs = sweep_jobs(OverridesParser.create().parse_overrides(argv))
    assert len(jobs) == 100
    for values in ([f"seed={i}" for i in range(100)], ["algorithm=bound", "algorithm=mbpo"]):
        assert all(any(v in job for job in jobs) for v in values)


def test_other_sweepers_decide_their_own_jobs():
    parser = OverridesParser.create()
    assert sweep_jobs(parser.parse_overrides(["hydra/sweeper=basic", "seed=1,2"])) is None
    assert sweep_jobs(parser.parse_overrides(["algorithm.real_data_ratio=interval(0,1)"])) is None


# --- the command's entry point: exit code 2 and one line ---


@pytest.mark.parametrize(
    "argv, key",
    [
        (PETS + ["seed=abc"], "seed='abc'"),
        (MBPO + ["overrides.num_stepz=10"], "overrides.num_stepz"),
        (PETS + ["resume=maybe"], "resume='maybe'"),
        (BOUND + ["+overrides.env_cfg._target_=nosuch.Env"], "overrides.env_cfg._target_"),
        (["-m", *MBPO, "overrides.model_batch_size=64,0"], "overrides.model_batch_size=0"),
    ],
    ids=["seed=abc", "misspelt key", "resume=maybe", "env target", "sweep"],
)
def test_the_entry_point_refuses_in_one_line_and_writes_nothing(
    argv, key, refused_in_process, tmp_path
):
    """``main`` in this process, with Hydra barred from starting (conftest.py)."""
    line = refused_in_process(*argv, *_out(tmp_path), root=False)
    assert key in line, line


def _command() -> list[str]:
    script = pathlib.Path(sys.executable).with_name("mbrl-bound")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mbrl_bound_plugin"]


def test_the_command_refuses_in_one_line_and_writes_nothing(tmp_path):
    """The real command, in a subprocess with a timeout: ``overrides.epoch_length=0`` hangs
    in mbrl's epoch loop, so a check that let it through would fail here, not block."""
    proc = subprocess.run(
        [*_command(), *MBPO, "overrides.epoch_length=0", *_out(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mbrl-bound: error: "), lines[0]
    assert "overrides.epoch_length=0" in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    for out in ("exp", "run", "sweep", ".hydra", "outputs", "multirun"):
        assert not (tmp_path / out).exists(), out
