"""The report on synthetic run folders: known numbers in, known table out."""

from __future__ import annotations

import math
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from mbrl_bound_plugin import report
from mbrl_bound_plugin.errors import ReportError
from mbrl_bound_plugin.report import RunFolderWarning

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASK = "InvertedPendulum-v5"

BOUND_FINALS = [10.0, 20.0, 30.0]  # mean 20, IQM 20 (fewer than 4 seeds: nothing cut)
MBPO_FINALS = [1.0, 2.0, 3.0, 100.0]  # mean 26.5, IQM = mean(2, 3) = 2.5
PETS_FINALS = [5.0, 7.0]  # mean 6


def make_run(
    folder: pathlib.Path,
    algorithm: str,
    seed: int,
    results: pd.DataFrame | str,
    env: str | None = f"gym___{TASK}",
    env_target: str | None = None,
) -> pathlib.Path:
    """Writes an mbrl-style run folder: ``.hydra/config.yaml``, overrides, results.csv."""
    overrides: dict = {"num_steps": 300}
    if env is not None:
        overrides["env"] = env
    if env_target is not None:
        overrides["env_cfg"] = {"_target_": env_target}
    config = {
        "algorithm": {"name": algorithm},
        "overrides": overrides,
        "seed": seed,
        "experiment": "default",
        "sac_gamma_ref": "${overrides.num_steps}",  # an unresolved interpolation, as Hydra
    }
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([f"algorithm={algorithm}", f"seed={seed}"])
    )
    if isinstance(results, str):
        (folder / "results.csv").write_text(results)
    else:
        results.to_csv(folder / "results.csv", index=False)
    return folder


def mbpo_style(final: float, bound: bool, seed: int) -> pd.DataFrame:
    """Three evaluation rows at env steps 99, 199, 299, ending at ``final``."""
    df = pd.DataFrame(
        {
            "env_step": [99.0, 199.0, 299.0],
            "episode_reward": [final / 4, final / 2, final],
            "epoch": [0.0, 1.0, 2.0],
            "rollout_length": [1.0, 1.0, 1.0],
            "step": [1, 2, 3],
        }
    )
    if bound:
        df["bound_reward"] = [0.8, 0.8, 0.7]
        df["disc_accuracy"] = [math.nan, 0.8 - 0.1 * seed, 0.6]
        df["kl_estimate"] = [math.nan, 1.0 + seed, 0.5]
    return df[sorted(df.columns)]  # mbrl's Logger writes the columns in sorted order


def pets_style(final: float, seed: int) -> pd.DataFrame:
    """One row per episode, at irregular env steps."""
    steps = np.cumsum([17.0 + seed, 22.0, 61.0, 140.0 + seed])
    return pd.DataFrame(
        {"env_step": steps, "episode_reward": [1.0, 2.0, 3.0, final], "step": [1, 2, 3, 4]}
    )


@pytest.fixture
def runs_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """bound in a multirun layout (0/, 1/, 2/), mbpo as single runs, pets, one CartPole."""
    root = tmp_path / "exp"
    for i, final in enumerate(BOUND_FINALS):
        make_run(root / "bound" / "multirun" / str(i), "bound", i, mbpo_style(final, True, i))
    for i, final in enumerate(MBPO_FINALS):
        folder = root / "mbpo" / "default" / f"gym___{TASK}" / "2026.01.01" / f"12000{i}"
        make_run(folder, "mbpo", i, mbpo_style(final, False, i))
    for i, final in enumerate(PETS_FINALS):
        make_run(root / "pets" / f"s{i}", "pets", i, pets_style(final, i))
    make_run(
        root / "pets" / "cartpole",
        "pets",
        0,
        pets_style(50.0, 0),
        env=None,
        env_target="mbrl.env.cartpole_continuous.CartPoleEnv",
    )
    return root


def table_rows(markdown: str, task: str) -> dict[str, list[str]]:
    """The cells of the table under ``## task``, keyed by algorithm."""
    section = markdown.split(f"## {task}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    return {c[0]: c[1:] for c in cells}


def is_png(path: pathlib.Path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_SIGNATURE


def test_find_runs_reads_algorithm_task_seed(runs_dir: pathlib.Path) -> None:
    runs = report.find_runs(runs_dir)
    assert [(r.task, r.algorithm, r.seed) for r in runs] == [
        ("CartPoleEnv", "pets", 0),
        *[(TASK, "bound", s) for s in range(3)],
        *[(TASK, "mbpo", s) for s in range(4)],
        *[(TASK, "pets", s) for s in range(2)],
    ]
    bound0 = runs[1]
    assert bound0.path == runs_dir / "bound" / "multirun" / "0"
    assert report.final_return(bound0) == 10.0
    assert list(bound0.results["episode_reward"]) == [2.5, 5.0, 10.0]


def test_task_of_override(runs_dir: pathlib.Path) -> None:
    runs = report.find_runs(
        runs_dir, task_of=lambda cfg: f"{cfg.experiment}/{report.default_task_of(cfg)}"
    )
    assert {r.task for r in runs} == {"default/CartPoleEnv", f"default/{TASK}"}


def test_summarize_matches_hand_computed_numbers(runs_dir: pathlib.Path) -> None:
    table = report.summarize(report.find_runs(runs_dir))
    bound, mbpo, pets = (table.loc[(TASK, a)] for a in ("bound", "mbpo", "pets"))
    assert (bound["seeds"], mbpo["seeds"], pets["seeds"]) == (3, 4, 2)
    assert bound["mean"] == pytest.approx(20.0)
    assert bound["iqm"] == pytest.approx(20.0)
    assert mbpo["mean"] == pytest.approx(26.5)
    assert mbpo["iqm"] == pytest.approx(2.5)  # the middle two of 1, 2, 3, 100
    assert pets["mean"] == pytest.approx(6.0)
    for row, finals in ((bound, BOUND_FINALS), (mbpo, MBPO_FINALS), (pets, PETS_FINALS)):
        assert min(finals) <= row["ci_low"] <= row["mean"] <= row["ci_high"] <= max(finals)
        assert row["ci_low"] < row["ci_high"]
    assert mbpo["ci_high"] < 100.0  # the mean of 4 resampled seeds reaches 100 only if all are
    assert bound["final_step_min"] == bound["final_step_max"] == 299.0
    assert pets["final_step_min"] == 17 + 22 + 61 + 140
    assert pets["final_step_max"] == 18 + 22 + 61 + 141
    cartpole = table.loc[("CartPoleEnv", "pets")]
    assert cartpole["seeds"] == 1 and cartpole["mean"] == 50.0
    assert math.isnan(cartpole["ci_low"]) and math.isnan(cartpole["ci_high"])
    # Seeded: the same table twice.
    pd.testing.assert_frame_equal(table, report.summarize(report.find_runs(runs_dir)))


def test_bootstrap_ci_edge_cases() -> None:
    assert report.bootstrap_ci([4.0, 4.0, 4.0]) == (4.0, 4.0)
    assert all(math.isnan(v) for v in report.bootstrap_ci([4.0]))
    low, high = report.bootstrap_ci([1.0, 2.0])
    assert 1.0 <= low < 1.5 < high <= 2.0


def test_write_report_table(runs_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    runs = report.find_runs(runs_dir)
    path = report.write_report(runs, tmp_path / "out")
    assert path == tmp_path / "out" / "report.md"
    text = path.read_text()
    rows = table_rows(text, TASK)
    assert list(rows) == ["bound", "mbpo", "pets"]
    # seeds | mean | IQM | CI | env steps; the best mean (mbpo's 26.5) in bold.
    assert rows["bound"][:3] == ["3", "20.00", "20.00"]
    assert rows["mbpo"][:3] == ["4", "**26.50**", "2.50"]
    assert rows["pets"][:3] == ["2", "6.00", "6.00"]
    assert rows["bound"][4] == "299"
    assert rows["pets"][4] == "240–242"  # seeds ending at different steps show the range
    low, high = (float(v) for v in rows["bound"][3].strip("[]").split(","))
    assert 10.0 <= low <= 20.0 <= high <= 30.0
    cartpole = table_rows(text, "CartPoleEnv")
    assert cartpole["pets"] == ["1", "50.00", "50.00", "n/a", "240"]  # alone: not bold
    assert "10000 resamples, seed 0" in text
    assert "trim_mean" in text
    for r in runs:  # every run folder is listed
        assert str(r.path.resolve()) in text


def test_plots_are_pngs(runs_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    runs = report.find_runs(runs_dir)
    curves = report.plot_curves(runs, tmp_path / "curves.png")
    diagnostics = report.plot_bound_diagnostics(runs, tmp_path / "diag.png")
    assert diagnostics is not None
    assert is_png(curves) and is_png(diagnostics)


def test_no_bound_runs_no_diagnostics(runs_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    runs = [r for r in report.find_runs(runs_dir) if r.algorithm != "bound"]
    assert report.plot_bound_diagnostics(runs, tmp_path / "diag.png") is None
    assert not (tmp_path / "diag.png").exists()


def test_curve_on_grid_interpolates_on_the_common_range() -> None:
    def run(steps: list[float], returns: list[float]) -> report.Run:
        df = pd.DataFrame({"env_step": steps, "episode_reward": returns})
        return report.Run(pathlib.Path("."), "pets", TASK, 0, df)

    # a: 0 -> 100 linearly over steps 0..100; b: 0 at steps 50, 80, 150. Common range
    # 50..100; grid = the logged steps in it: 50, 80 (b's) and 100 (a's).
    steps, mean, low, high = report.curve_on_grid(
        [run([0.0, 100.0], [0.0, 100.0]), run([50.0, 80.0, 150.0], [0.0, 0.0, 0.0])]
    )
    np.testing.assert_allclose(steps, [50, 80, 100])
    np.testing.assert_allclose(mean, [25, 40, 50])
    np.testing.assert_allclose(low, 0.0)
    np.testing.assert_allclose(high, [50, 80, 100])
    # The same steps: the data as logged.
    steps, mean, low, high = report.curve_on_grid(
        [run([1.0, 2.0, 3.0], [1.0, 5.0, 3.0]), run([1.0, 2.0, 3.0], [3.0, 1.0, 3.0])]
    )
    np.testing.assert_allclose(steps, [1, 2, 3])
    np.testing.assert_allclose(mean, [2, 3, 3])
    np.testing.assert_allclose(low, [1, 1, 3])
    np.testing.assert_allclose(high, [3, 5, 3])


def test_unusable_folders_are_skipped(runs_dir: pathlib.Path) -> None:
    make_run(runs_dir / "broken" / "empty", "mbpo", 9, "")
    make_run(runs_dir / "broken" / "nocols", "mbpo", 9, "step,epoch\n1,0\n")
    make_run(runs_dir / "broken" / "header_only", "mbpo", 9, "env_step,episode_reward\n")
    with pytest.warns(RunFolderWarning, match="skipped 3 run folder") as record:
        runs = report.find_runs(runs_dir)
    message = str(record[0].message)
    assert "empty results.csv" in message and "lacks env_step, episode_reward" in message
    assert len(runs) == 10 and all("broken" not in str(r.path) for r in runs)


def test_repeated_seeds_are_counted_with_a_warning(runs_dir: pathlib.Path) -> None:
    make_run(runs_dir / "again", "bound", 1, mbpo_style(40.0, True, 1))
    with pytest.warns(RunFolderWarning, match=f"bound on {TASK} seed 1 x2"):
        runs = report.find_runs(runs_dir)
    assert report.summarize(runs).loc[(TASK, "bound"), "seeds"] == 4


def test_no_runs_is_an_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ReportError, match="no run folder"):
        report.find_runs(tmp_path / "nothing")
    with pytest.raises(ReportError, match="does not exist"):
        report.find_runs(tmp_path / "missing")
    make_run(tmp_path / "only_empty", "bound", 0, "")
    with pytest.warns(RunFolderWarning), pytest.raises(ReportError, match="no usable run"):
        report.find_runs(tmp_path / "only_empty")


def run_cli(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mbrl_bound_plugin.report", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_writes_report_and_plots(runs_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    make_run(runs_dir / "empty", "mbpo", 9, "")
    proc = run_cli(str(runs_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("mbrl-bound-report: warning: skipped 1 run folder")
    written = [pathlib.Path(p) for p in proc.stdout.split()]
    names = ["report.md", "curves.png", "bound_diagnostics.png"]
    assert written == [runs_dir / n for n in names]
    assert is_png(runs_dir / "curves.png") and is_png(runs_dir / "bound_diagnostics.png")
    assert "**26.50**" in (runs_dir / "report.md").read_text()


def test_cli_bad_dir_is_one_line_exit_2(tmp_path: pathlib.Path) -> None:
    proc = run_cli(str(tmp_path / "missing"), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mbrl-bound-report: error: ") and "does not exist" in lines[0]
    assert proc.stdout == ""
