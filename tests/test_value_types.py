"""Every value a run reads has its type checked before the run starts (one line, exit 2)."""

from __future__ import annotations

import os
import pathlib
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from mbrl_bound_plugin.cli.main import preflight
from mbrl_bound_plugin.config.composition import compose
from mbrl_bound_plugin.config.value_types import (
    NULLABLE,
    NULLABLE_LEAVES,
    UNTYPED,
    float_keys,
    resolved_sections,
)
from mbrl_bound_plugin.errors import UsageError

BOUND = ["algorithm=bound", "overrides=mbpo_inv_pendulum_v5"]
MBPO = ["algorithm=mbpo", "overrides=mbpo_inv_pendulum_v5"]
PETS = ["algorithm=pets", "overrides=pets_inv_pendulum_v5"]


def _refusal(argv: list[str]) -> str:
    """The one line preflight refuses ``argv`` with."""
    with pytest.raises(UsageError) as info:
        preflight(argv)
    message = str(info.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    "override, fragment",
    [
        # (each ended in a traceback, an instantiation error or a NaN loss before)
        ("algorithm.disc_max_rows=-0.5", "algorithm.disc_max_rows=-0.5: use an integer"),
        ("discriminator.eval_every=inf", "discriminator.eval_every=inf: use an integer"),
        ("dynamics_model.num_layers=abc", "dynamics_model.num_layers='abc': use an integer"),
        ("overrides.sac_lr=null", "overrides.sac_lr=null: use a value, not null"),
        ("discriminator.noise_scale=inf", "discriminator.noise_scale=inf: use a finite number"),
        ("discriminator.lr=nan", "discriminator.lr=nan: use a finite number"),
        ("algorithm.disc_max_rows=-5", "algorithm.disc_max_rows=-5: use an integer >= 0"),
        ("algorithm.disc_max_rows=0", "algorithm.disc_max_rows=0: use an integer >= 1"),
        ("discriminator.spectral_norm=1", "discriminator.spectral_norm=1: use true or false"),
        ("algorithm.bound_agent.mode=3", "algorithm.bound_agent.mode=3: use one of scaled, bound"),
        ("experiment=5", "experiment=5: use a string (quoted: experiment='5')"),
        ("overrides.rollout_schedule=5", "overrides.rollout_schedule=5: use a list"),
        ("overrides.rollout_schedule=[1,15,nan,1]", "use a list of finite numbers"),
        # a value interpolated elsewhere is named by the key the user sets
        ("overrides.sac_gamma=abc", "overrides.sac_gamma='abc': use a number"),
        ("overrides.sac_gamma=inf", "overrides.sac_gamma=inf: use a finite number"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line(override, fragment):
    assert fragment in _refusal([*BOUND, override])


@pytest.mark.parametrize(
    "override",
    [
        "seed=null",
        "algorithm.model_wrapper.bound_batch_size=null",
        "algorithm.bound_agent.reward_floor=null",
        "algorithm.bound_agent.lam=1",  # an integer where a float is shipped
        "overrides.sac_target_entropy=-0.5",  # -1 in this file, a float in others
        "resume=auto",
        "experiment='5'",
        "+overrides.new_key=anything",  # not in the defaults: not typed here
    ],
)
def test_documented_values_still_pass(override):
    preflight([*BOUND, override])


def test_the_command_exits_2_with_one_line(tmp_path: pathlib.Path):
    proc = subprocess.run(
        [sys.executable, "-m", "mbrl_bound_plugin", *BOUND, "discriminator.noise_scale=inf"],
        cwd=tmp_path,
        env=dict(os.environ, HYDRA_FULL_ERROR="0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "mbrl-bound: error: discriminator.noise_scale=inf: use a finite number"
    ]
    assert not (tmp_path / "exp").exists()


# --------------------------------------------------------------------- the fuzz


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def _nullable(key: str) -> bool:
    return key in NULLABLE or key.rpartition(".")[2] in NULLABLE_LEAVES


def _malformed(key: str, default: Any) -> list[str]:
    """Values of the wrong kind for a key shipped as ``default`` (Hydra's syntax)."""
    if default is None and not _nullable(key):
        return []  # (untyped: any value may serve)
    if key in UNTYPED:  # (seed, resume)
        values = ["abc", "0.5", "nan", "[1,2]"]
    elif isinstance(default, bool):
        values = ["abc", "3", "nan"]
    elif key in float_keys() and isinstance(default, int):
        values = ["abc", "nan", "inf", "true"]
    elif isinstance(default, int) or (default is None and NULLABLE.get(key) is int):
        values = ["abc", "0.5", "nan", "inf", "true"] + (["-3"] if (default or 0) >= 0 else [])
    elif isinstance(default, float) or default is None:
        values = ["abc", "nan", "inf", "-inf", "true", "[1,2]"]
    elif isinstance(default, str):
        values = ["5", "0.5", "true", "[a,b]"]
    elif isinstance(default, list):
        values = ["abc", "3", "nan"]
    else:
        return []
    return values if _nullable(key) else [*values, "null"]


def _fuzz_cases(base: list[str]) -> list[tuple[str, str]]:
    plain = resolved_sections(compose(base))  # (the sections the algorithm reads)
    cases = []
    for key, default in _leaves(plain):
        if default == "???":  # (filled in from the environment)
            continue
        cases += [(key, value) for value in _malformed(key, default)]
    return cases


@pytest.mark.parametrize("base", [BOUND, MBPO, PETS], ids=["bound", "mbpo", "pets"])
def test_malformed_values_of_any_key_are_one_line_usage_errors(base):
    cases = _fuzz_cases(base)
    assert len(cases) > 200  # (every leaf of the config, several values each)
    sample = random.Random(0).sample(cases, 12)
    for key, value in sample:
        try:
            preflight([*base, f"{key}={value}"])
        except UsageError as e:
            assert "\n" not in str(e), (key, value, str(e))
        else:
            pytest.fail(f"{key}={value} was accepted")


def test_the_fuzz_covers_every_type():
    leaves = _leaves(resolved_sections(compose(BOUND)))
    kinds = {type(default).__name__ for key, default in leaves if _malformed(key, default)}
    assert {"int", "float", "bool", "str", "list", "NoneType"} <= kinds
