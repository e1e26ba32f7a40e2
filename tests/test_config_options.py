"""Every shipped option of the ``dynamics_model`` and ``action_optimizer`` groups runs.

The options are listed at test time from this package's ``conf/`` and mbrl's installed
``examples/conf`` (ours shadow mbrl's of the same name, as on Hydra's search path), so a
new option file is covered without editing this module. Each option runs a few steps,
on tiny budgets, of every algorithm it serves: ``dynamics_model`` with pets, mbpo and
bound; ``action_optimizer`` with pets. An option that cannot serve an algorithm is
skipped, after the test has checked the reason it gives.
"""

from __future__ import annotations

import functools
import math
import pathlib
import re

import hydra.utils
import mbrl.planning.trajectory_opt
import pytest
import yaml
from conftest import TINY_BOUND, TINY_MBPO, TINY_MODEL, TINY_PETS
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import OmegaConf

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import (
    mbrl_bound_conf_dir,
    mbrl_examples_conf_dir,
)
from mbrl_bound_plugin.config.composition import compose, group_options, quiet_config_warnings
from mbrl_bound_plugin.errors import UsageError


def shipped_options(group: str) -> dict[str, pathlib.Path]:
    """Option name -> the file Hydra composes for it (this package's conf/ wins)."""
    found: dict[str, pathlib.Path] = {}
    for root in (mbrl_examples_conf_dir(), mbrl_bound_conf_dir()):  # later overrides
        if root is not None:
            found.update((p.stem, p) for p in (root / group).glob("*.yaml"))
    return dict(sorted(found.items()))


MODELS = shipped_options("dynamics_model")
OPTIMIZERS = shipped_options("action_optimizer")
MODEL_ALGORITHMS = ("pets", "mbpo", "bound")
OPTIMIZER_ALGORITHMS = ("pets",)
PETS_OVERRIDES = [name for name in group_options("overrides") if name.startswith("pets_")]
OVERRIDES_FOR = {"pets": "pets_inv_pendulum_v5", "mbpo": "mbpo_inv_pendulum_v5"}
OVERRIDES_FOR["bound"] = OVERRIDES_FOR["mbpo"]

# `${overrides.KEY}` (no fallback) and `${oc.select:overrides.KEY,DEFAULT}` in an option.
PLAIN_KEY = re.compile(r"\$\{overrides\.(\w+)\}")
SELECT_KEY = re.compile(r"\$\{oc\.select:overrides\.(\w+),([^}]*)\}")

# Runs expected to fail (strict: once fixed, the XPASS fails; delete the entry then).
# bound's model wrapper and discriminator step assume GaussianMLP's interface; what
# mbrl's BasicEnsemble needs there is Python (mbrl_bound_plugin/model.py and
# algorithm.py), not configuration.
KNOWN_FAILURES: dict[tuple[str, str, str], str] = {}


def _load(path: pathlib.Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def _model_cannot_serve(option: str) -> str | None:
    """Why pets/mbpo/bound cannot train the model of ``option`` (None: they can)."""
    target = _load(MODELS[option])["_target_"]
    cls = hydra.utils.get_class(target)
    # mbrl's OneDTransitionRewardModel, the wrapper of pets, mbpo and bound, needs these
    lacking = [name for name in ("reset_1d", "sample_1d") if not hasattr(cls, name)]
    if lacking:
        return (
            f"{target} has no {' or '.join(lacking)}, which mbrl's "
            "OneDTransitionRewardModel (pets, mbpo, bound) needs"
        )
    return None


def _optimizer_cannot_serve(option: str) -> str | None:
    """Why pets cannot plan with the optimizer of ``option`` (None: it can)."""
    target = _load(OPTIMIZERS[option])["_target_"]
    if not issubclass(hydra.utils.get_class(target), mbrl.planning.trajectory_opt.Optimizer):
        return f"{target} is not an mbrl.planning.trajectory_opt.Optimizer, which pets' agent needs"
    return None


def _tiny_model(option: str) -> list[str]:
    """TINY_MODEL, placed where the option keeps each size."""
    cfg = _load(MODELS[option])
    sizes = cfg.get("member_cfg", cfg)  # BasicEnsemble: the members' sizes
    where = "dynamics_model.member_cfg" if "member_cfg" in cfg else "dynamics_model"
    args = [f"{where}.hid_size=32"] if "hid_size" in sizes else []
    if cfg.get("ensemble_size", 1) > 1:
        args += ["dynamics_model.ensemble_size=3", "overrides.num_elites=2"]
    else:  # a single model: one elite
        args += ["overrides.num_elites=1"]
    return args + ["overrides.model_batch_size=64"]


def _tiny_optimizer(option: str) -> list[str]:
    """Tiny iteration count and population for the overrides keys the option reads."""
    text = OPTIMIZERS[option].read_text()
    tiny = {"num_iterations": 2, "population_size": 20}
    args = []
    for field, value in tiny.items():
        match = re.search(rf"^{field}:.*overrides\.(\w+)", text, re.MULTILINE)
        if match:
            args.append(f"++overrides.{match.group(1)}={value}")
    return args


def _tiny_run(group: str, option: str, algorithm: str) -> list[str]:
    base = {"pets": TINY_PETS, "mbpo": TINY_MBPO, "bound": TINY_BOUND}[algorithm]
    # TINY_MODEL and the planner settings are replaced by the option's own
    args = [a for a in base if a not in TINY_MODEL and not a.startswith("overrides.cem_")]
    model = option if group == "dynamics_model" else "gaussian_mlp_ensemble"
    args += _tiny_model(model)
    if algorithm == "pets":
        # (iCEM keeps elites across steps, so its population may be odd; mbrl's
        # random_model propagation needs population x particles divisible by the elites)
        args = [a for a in args if not a.startswith("algorithm.num_particles")]
        args += ["algorithm.num_particles=2"]
        args += _tiny_optimizer(option if group == "action_optimizer" else "cem")
    return args


def _run_params():
    groups = (("dynamics_model", MODELS, MODEL_ALGORITHMS),)
    groups += (("action_optimizer", OPTIMIZERS, OPTIMIZER_ALGORITHMS),)
    for group, options, algorithms in groups:
        for option in options:
            for algorithm in algorithms:
                reason = KNOWN_FAILURES.get((group, option, algorithm))
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                yield pytest.param(
                    group, option, algorithm, marks=marks, id=f"{group}={option}-{algorithm}"
                )


def test_options_are_listed_from_both_conf_dirs():
    assert {"basic_ensemble", "gaussian_mlp_ensemble"} <= set(MODELS)
    assert {"cem", "icem", "mppi"} <= set(OPTIMIZERS)
    # this package's basic_ensemble shadows mbrl's (member_cfg not built recursively)
    assert MODELS["basic_ensemble"].parent.parent == mbrl_bound_conf_dir()
    cfg = compose(
        ["algorithm=mbpo", "overrides=mbpo_inv_pendulum_v5", "dynamics_model=basic_ensemble"]
    )
    assert cfg.dynamics_model.member_cfg._recursive_ is False


@pytest.mark.slow
@pytest.mark.parametrize(("group", "option", "algorithm"), list(_run_params()))
def test_option_runs(run_cli, results, tmp_path, group, option, algorithm):
    cannot = {"dynamics_model": _model_cannot_serve, "action_optimizer": _optimizer_cannot_serve}
    reason = cannot[group](option)
    if reason is not None:
        pytest.skip(f"{group}={option} cannot serve algorithm={algorithm}: {reason}")
    proc = run_cli(
        f"algorithm={algorithm}",
        f"overrides={OVERRIDES_FOR[algorithm]}",
        f"{group}={option}",
        *_tiny_run(group, option, algorithm),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = results()
    assert rows, "results.csv has no rows"
    steps = [float(r["env_step"]) for r in rows]
    assert steps == sorted(steps)
    assert all(math.isfinite(float(r["episode_reward"])) for r in rows)
    if algorithm == "pets":  # random steps, model trained, then planned steps
        assert steps[-1] >= 60
    else:  # two epochs of 100 steps: a model trained, SAC acted and was evaluated
        assert [int(float(r["epoch"])) for r in rows] == [0, 1]
    # the run composed the option asked for, from the file listed for it
    (run_dir,) = {p.parent for p in (tmp_path / "exp").rglob("results.csv")}
    run_cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    choices = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.runtime.choices
    assert choices[group] == option
    expected = _load(MODELS[option] if group == "dynamics_model" else OPTIMIZERS[option])
    assert run_cfg[group]._target_ == expected["_target_"]


def _hydra_compose(overrides: list[str]):
    with (
        quiet_config_warnings(),
        initialize_config_dir(version_base="1.1", config_dir=str(mbrl_bound_conf_dir())),
    ):
        return hydra_compose(config_name="main", overrides=overrides)


@functools.cache
def _overrides_keys(overrides: str) -> frozenset[str]:
    return frozenset(_hydra_compose(["algorithm=pets", f"overrides={overrides}"]).overrides)


@pytest.mark.parametrize("overrides", PETS_OVERRIDES)
@pytest.mark.parametrize("option", list(OPTIMIZERS))
def test_optimizer_serves_every_pets_overrides_file(option, overrides):
    """Composes with every PETS overrides file, but one with none of the keys it reads.

    A key the optimizer reads without a fallback is one every overrides file made for
    it sets (cem, icem: cem_num_iters, ...); a file with none of them (pets_mppi_*, for
    MPPI) is refused in one line naming a key; one with only some is a bug.
    """
    unguarded = set(PLAIN_KEY.findall(OPTIMIZERS[option].read_text()))
    lacking = unguarded - _overrides_keys(overrides)
    args = ["algorithm=pets", f"overrides={overrides}", f"action_optimizer={option}"]
    if lacking:
        assert lacking == unguarded, f"overrides={overrides} lacks only {sorted(lacking)}"
        with pytest.raises(UsageError, match="|".join(f"'overrides.{k}'" for k in lacking)):
            compose(args)
        return
    optimizer = OmegaConf.to_container(compose(args).algorithm.agent.optimizer_cfg, resolve=True)
    assert optimizer["_target_"] == _load(OPTIMIZERS[option])["_target_"]


def _fallbacks(option: str) -> dict[str, tuple[str, object]]:
    """Field -> (overrides key, fallback value) of the option's oc.select fields."""
    found = {}
    for field, value in _load(OPTIMIZERS[option]).items():
        match = SELECT_KEY.fullmatch(str(value))
        if match:
            found[field] = (match.group(1), yaml.safe_load(match.group(2)))
    return found


@pytest.mark.parametrize("option", list(OPTIMIZERS))
def test_optimizer_fallbacks_are_mbrls_values_and_overrides_win(option):
    """A key the overrides file lacks takes mbrl's example value; one it sets wins."""
    fallbacks = _fallbacks(option)
    if not fallbacks:
        pytest.skip(f"action_optimizer={option} reads every key from the overrides file")
    mbrl_pets = [_load(p) for p in (mbrl_examples_conf_dir() / "overrides").glob("pets_*.yaml")]
    base = ["algorithm=pets", "overrides=pets_inv_pendulum_v5", f"action_optimizer={option}"]
    present = _overrides_keys("pets_inv_pendulum_v5")
    lacking = compose(
        base + [f"~overrides.{key}" for key, _ in fallbacks.values() if key in present]
    ).algorithm.agent.optimizer_cfg
    given = {}
    for field, (key, fallback) in fallbacks.items():
        used = {f[key] for f in mbrl_pets if key in f}
        assert used == {fallback}, f"{field}: mbrl's PETS examples set {key} to {used}"
        assert lacking[field] == fallback
        other = not fallback if isinstance(fallback, bool) else fallback * 2 + 1
        given[field] = (key, str(other).lower())  # (YAML text: true/false or a number)
    cfg = compose(base + [f"++overrides.{key}={text}" for key, text in given.values()])
    for field, (_, text) in given.items():
        assert cfg.algorithm.agent.optimizer_cfg[field] == yaml.safe_load(text)
