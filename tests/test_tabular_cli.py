"""Tests of ``python -m mbrl_bound_plugin.tabular`` and of how the tabular package imports.

The command is run in a subprocess, as a user runs it: its JSON and text outputs keep
their format, ``--plot`` writes a PNG and an unknown experiment is refused. Two more
subprocesses check the imports: the library pulls in neither torch, mbrl nor matplotlib,
and drawing the figures neither imports ``matplotlib.pyplot`` nor changes the backend
that the caller (say, a notebook) selected.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return env


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mbrl_bound_plugin.tabular", *args],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_json() -> None:
    proc = _cli("risk", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"q_learning", "mnm", "vmbpo"}
    assert all(isinstance(v, float) for v in result.values())


def test_cli_text_summary() -> None:
    proc = _cli("risk")
    assert proc.returncode == 0, proc.stderr
    number = r"\d+\.\d{3}"
    pattern = (
        rf"risk \(true return from the start\): q_learning = {number}, "
        rf"mnm = {number}, vmbpo = {number}\n"
    )
    assert re.fullmatch(pattern, proc.stdout), proc.stdout


def test_cli_plot_writes_png(tmp_path: Path) -> None:
    out = tmp_path / "risk.png"
    proc = _cli("risk", "--plot", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_cli_rejects_unknown_experiment() -> None:
    proc = _cli("no-such-experiment")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_library_import_is_numpy_only() -> None:
    proc = _python(
        """
        import json, sys
        import mbrl_bound_plugin.tabular
        import mbrl_bound_plugin.tabular.cli
        import mbrl_bound_plugin.tabular.experiments
        heavy = ("torch", "mbrl", "matplotlib")
        print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_plots_keep_the_backend_and_do_not_import_pyplot(tmp_path: Path) -> None:
    # "svg" stands in for a backend the caller chose (a notebook's inline backend, say):
    # it is neither the Agg that a plotting module might force nor the default.
    proc = _python(
        """
        import json, pathlib, sys
        import matplotlib
        matplotlib.use("svg")
        before = matplotlib.get_backend()
        from matplotlib.figure import Figure
        import mbrl_bound_plugin.tabular
        from mbrl_bound_plugin.tabular import experiments, plots

        out = pathlib.Path(sys.argv[1])
        grid, runs = experiments.inaccurate_model_runs()
        figs = [
            plots.plot_bound_tracking(experiments.run_bound_tracking(), out / "b.png"),
            plots.plot_risk(experiments.run_risk(), str(out / "r.png")),
            plots.plot_inaccurate_model(
                grid, runs, experiments.inaccurate_model_result(grid, runs), out / "i.png"
            ),
            plots.plot_risk(experiments.run_risk()),  # no path: only returns the figure
        ]
        print(json.dumps({
            "before": before,
            "after": matplotlib.get_backend(),
            "pyplot": "matplotlib.pyplot" in sys.modules,
            "figures": [type(f) is Figure for f in figs],
        }))
        """,
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["before"] == "svg"
    assert report["after"] == report["before"]
    assert report["pyplot"] is False
    assert report["figures"] == [True] * 4
    for name in ("b.png", "r.png", "i.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "i.png", "r.png"]
