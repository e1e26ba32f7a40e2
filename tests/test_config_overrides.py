"""A run's overrides: parsed once, sweeps split by Hydra's own basic sweeper."""

from __future__ import annotations

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import open_dict

import mbrl_bound_plugin.cli.main as cli
import mbrl_bound_plugin.env.factory as factory
import mbrl_bound_plugin.util.device as device
from mbrl_bound_plugin.config.composition import _hydra_compose
from mbrl_bound_plugin.config.overrides import (
    MAX_CHECKED_JOBS,
    group_options,
    parse_overrides,
    sweep_jobs,
)
from mbrl_bound_plugin.errors import UsageError

BOUND = ["algorithm=bound", "overrides=mbpo_inv_pendulum_v5"]


@pytest.mark.parametrize(
    "argv, count",
    [
        (["seed=1,2", "+x=a,b"], 4),
        (["seed=range(3)", "+x=a"], 3),
        (["algorithm=choice(bound,mbpo)", "seed=range(1,7,2)"], 6),
        (["seed=1,2", "seed=5,6,7"], 3),  # a key given twice keeps its last value
        (["~overrides.patience", "algorithm=pets"], 1),
        ([], 1),
    ],
)
def test_sweep_jobs_are_hydras_jobs(argv, count):
    jobs = sweep_jobs(parse_overrides(argv))
    assert (
        jobs
        == BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(argv), None)[0]
    )
    assert len(jobs) == count


def test_seed_and_x_sweep_in_hydras_order():
    jobs = sweep_jobs(parse_overrides(["seed=1,2", "+x=a,b"]))
    assert jobs == [
        ["seed=1", "+x=a"],
        ["seed=1", "+x=b"],
        ["seed=2", "+x=a"],
        ["seed=2", "+x=b"],
    ]


def test_a_glob_lists_the_options_hydra_lists():
    jobs = sweep_jobs(parse_overrides(["algorithm=glob(bound*)", "seed=1,2"]))
    bounds = [name for name in group_options("algorithm") if name.startswith("bound")]
    assert len(bounds) >= 3
    assert [job[0] for job in jobs[::2]] == [f"algorithm={name}" for name in bounds]
    # (also from overrides parsed without a config loader)
    plain = OverridesParser.create().parse_overrides(["algorithm=glob(bound*)"])
    assert sweep_jobs(plain) == [[f"algorithm={name}"] for name in bounds]


def test_a_large_sweep_takes_every_value_once():
    argv = ["seed=range(100)", "overrides.num_steps=range(1,11)", "algorithm=bound,mbpo"]
    jobs = sweep_jobs(parse_overrides(argv))
    assert 100 * 10 * 2 > MAX_CHECKED_JOBS and len(jobs) == 100
    for values in ([f"seed={i}" for i in range(100)], ["algorithm=bound", "algorithm=mbpo"]):
        assert all(any(v in job for job in jobs) for v in values)


def test_other_sweepers_decide_their_jobs():
    assert sweep_jobs(parse_overrides(["hydra/sweeper=basic", "seed=1,2"])) is None
    assert sweep_jobs(parse_overrides(["algorithm.real_data_ratio=interval(0,1)"])) is None


def test_an_unparsable_override_is_quoted():
    with pytest.raises(UsageError, match=r"cannot parse the override 'seed=\[1'"):
        parse_overrides(["seed=1", "seed=[1"])


def _count_calls(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_preflight_parses_once_and_composes_each_job_once(monkeypatch):
    parses = _count_calls(monkeypatch, cli, "parse_overrides")
    composes = _count_calls(monkeypatch, cli, "compose_checked")
    cli._checked_jobs.clear()
    cli.preflight(["-m", *BOUND, "seed=1,2", "overrides.num_steps=300"])
    assert len(parses) == 1
    assert [call[0] for call in composes] == [
        [*BOUND, "seed=1", "overrides.num_steps=300"],
        [*BOUND, "seed=2", "overrides.num_steps=300"],
    ]
    # each job's Hydra task finds it checked, under the overrides Hydra gives the task
    assert cli._checked_jobs == {
        (*BOUND, "seed=1", "overrides.num_steps=300"),
        (*BOUND, "seed=2", "overrides.num_steps=300"),
    }


def test_a_bad_job_of_a_sweep_is_named():
    with pytest.raises(UsageError, match=r"overrides\.num_steps=0: .*\(in the job overrides"):
        cli.preflight(["-m", *BOUND, "overrides.num_steps=100,0"])


class _Reached(Exception):
    pass


def test_the_hydra_task_of_a_checked_job_does_not_check_it_again(monkeypatch, tmp_path):
    cli._checked_jobs.clear()
    cli.preflight([*BOUND, "seed=4"])
    cfg = _hydra_compose([*BOUND, "seed=4"])  # (what Hydra hands the task, and its node)
    cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]

    def refuse(*args):
        raise AssertionError("checked twice")

    def reached(*args):
        raise _Reached

    monkeypatch.setattr(cli, "check_config", refuse)
    monkeypatch.setattr(device, "_resolve", refuse)  # (preflight resolved it)
    monkeypatch.setattr(factory, "make_env", reached)  # (the run's first step after the checks)
    try:
        with pytest.raises(_Reached):
            cli.run(cfg)
        assert cfg.device in ("cpu", "cuda:0")
        cli._checked_jobs.clear()  # a job preflight did not check is checked in its task
        with pytest.raises(AssertionError, match="checked twice"):
            cli.run(cfg)
    finally:
        HydraConfig.instance().cfg = None
