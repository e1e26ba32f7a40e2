"""How the package is layered: what importing it does, and does not, do."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

PYPROJECT = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    """pyproject.toml's [tool.importlinter] contracts: layers, and tabular standing alone.

    (The training code never imports the command, lower layers never call back into
    higher ones, lazy imports inside functions included.)
    """
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(PYPROJECT), no_cache=True) == 0


def test_every_subpackage_is_in_a_layer():
    """A new subpackage gets a place in the layers contract, or it would go unchecked."""
    tomllib = pytest.importorskip("tomllib")  # (Python 3.11)
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [c for c in contracts if c["type"] == "layers"]
    layered = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    package = PYPROJECT.parent / "mbrl_bound_plugin"
    subpackages = {p.parent.name for p in package.glob("*/__init__.py")} | {
        p.stem for p in package.glob("*.py") if not p.stem.startswith("_")
    }
    standalone = {"tabular"}  # (its own contract: it imports no other part)
    assert subpackages - standalone == layered


def test_importing_the_package_changes_no_warning_filter():
    # the dependencies are imported first: only this package's own imports are judged
    proc = _python(
        "import warnings, torch, mbrl.models, mbrl.planning, hydra, gymnasium, matplotlib, tqdm\n"
        "import mbrl.algorithms.mbpo, mbrl.algorithms.pets, pandas, scipy.stats\n"
        "before = list(warnings.filters)\n"
        "import mbrl_bound_plugin\n"
        "from mbrl_bound_plugin import algorithms, cli, config, report, tabular\n"
        "import mbrl_bound_plugin.algorithms.bound, mbrl_bound_plugin.cli.main\n"
        "import mbrl_bound_plugin.cli.compare, mbrl_bound_plugin.report.cli\n"
        "mbrl_bound_plugin.compose(['algorithm=bound', 'overrides=mbpo_inv_pendulum_v5'])\n"
        "print(before == list(warnings.filters))"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_the_version_is_written_once():
    import importlib.metadata

    import mbrl_bound_plugin

    assert importlib.metadata.version("mbrl-bound") == mbrl_bound_plugin.__version__
    assert mbrl_bound_plugin.__version__ not in PYPROJECT.read_text()


BLOCK_MBRL = "import sys; sys.modules['mbrl'] = None  # as if mbrl were not installed\n"


@pytest.mark.parametrize(
    "code",
    [
        "import mbrl_bound_plugin; mbrl_bound_plugin.train",
        "from mbrl_bound_plugin import compose",
    ],
)
def test_without_mbrl_the_api_names_the_install_line(code):
    proc = _python(BLOCK_MBRL + code)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: mbrl-bound needs mbrl-lib")
    assert "pip install --no-deps mbrl==0.2.0" in last


def test_without_mbrl_the_command_says_one_line():
    proc = _python(
        BLOCK_MBRL + "from mbrl_bound_plugin.cli.main import main; main(['algorithm=bound'])"
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "mbrl-bound: error: mbrl-bound needs mbrl-lib: pip install --no-deps mbrl==0.2.0 "
        "(--no-deps: its own pins of hydra-core 1.0 and omegaconf 2.0 do not import on "
        "Python 3.11)"
    ]


def test_without_mbrl_the_tabular_module_still_works():
    proc = _python(BLOCK_MBRL + "import mbrl_bound_plugin.tabular as t; print(t.__name__)")
    assert proc.returncode == 0, proc.stderr


def test_the_report_does_not_import_torch():
    # mbrl-bound-report reads CSV files; torch would add seconds to its start-up
    proc = _python(
        "import sys, mbrl_bound_plugin.report.cli, mbrl_bound_plugin.env.maze\n"
        "print('torch' in sys.modules)"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
