"""The report on synthetic run folders: known numbers in, known table out."""

from __future__ import annotations

import dataclasses
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
from mbrl_bound_plugin.report.cli import main
from mbrl_bound_plugin.util import wall_time

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


def task_section(markdown: str, task: str) -> str:
    """The text under ``## task``, up to the next ``## `` heading."""
    return markdown.split(f"## {task}\n", 1)[1].split("\n## ", 1)[0]


def tables(text: str) -> list[list[list[str]]]:
    """The markdown tables in ``text``: rows of cells, header and separator left out."""
    found: list[list[list[str]]] = []
    previous = ""
    for line in text.splitlines():
        if line.startswith("|") and not previous.startswith("|"):
            found.append([])
        if line.startswith("|"):
            found[-1].append([c.strip() for c in line.strip().strip("|").split("|")])
        previous = line
    return [table[2:] for table in found]


def table_rows(markdown: str, task: str, heading: str = "Final return") -> dict[str, list[str]]:
    """The cells of the first table under ``### heading`` of ``## task``, by first cell."""
    section = task_section(markdown, task).split(f"### {heading}", 1)[1].split("\n### ", 1)[0]
    return {cells[0]: cells[1:] for cells in tables(section)[0]}


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


def test_the_report_sums_each_runs_wall_time_and_counts_the_runs_without(
    runs_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    header = "started,wall_s,cpu_s,ended\n"
    sessions = {  # bound seed 0 was resumed once; bound seed 2 and pets have no file
        runs_dir / "bound" / "multirun" / "0": [
            "t,600.0,500.0,interrupted",
            "t,300.0,280.0,completed",
        ],
        runs_dir / "bound" / "multirun" / "1": ["t,1200.0,1100.0,completed"],
    }
    for folder, rows in sessions.items():
        (folder / wall_time.WALL_TIME_FILE).write_text(header + "\n".join(rows) + "\n")
    mbpo = sorted((runs_dir / "mbpo").rglob("results.csv"))
    for i, results in enumerate(mbpo):
        (results.parent / wall_time.WALL_TIME_FILE).write_text(
            f"{header}t,{60.0 * (i + 1)},60.0,completed\n"
        )
    runs = report.find_runs(runs_dir)
    table = report.run_table(runs)
    bound = table[table["algorithm"] == "bound"].set_index("seed")
    assert bound.loc[0, "wall_s"] == 900.0 and bound.loc[0, "sessions"] == 2
    assert math.isnan(bound.loc[2, "wall_s"])
    text = report.write_report(runs, tmp_path / "out").read_text()
    cost = table_rows(text, TASK, "Cost per run")
    # runs timed | wall min, median | range | CPU min, median
    assert cost["bound"] == ["2 of 3", "17.5", "15.0–20.0", "15.7"]
    assert cost["mbpo"] == ["4 of 4", "2.5", "1.0–4.0", "1.0"]
    assert cost["pets"] == ["0 of 2", "", "", ""]
    assert "Cost per run" not in task_section(text, "CartPoleEnv")  # no run timed there
    listed = {(cells[1], cells[2]): cells[6] for cells in tables(text.split("## Runs", 1)[1])[0]}
    assert listed[("bound", "0")] == "15.0" and listed[("bound", "2")] == ""


def test_write_report_table(runs_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    runs = report.find_runs(runs_dir)
    path = report.write_report(runs, tmp_path / "out")
    assert path == tmp_path / "out" / "report.md"
    text = path.read_text()
    rows = table_rows(text, TASK)
    assert list(rows) == ["bound", "mbpo", "pets"]
    # seeds | mean | IQM | interval | env steps; the best mean (mbpo's 26.5) in bold.
    assert rows["bound"][:3] == ["3", "20.00", "20.00"]
    assert rows["mbpo"][:3] == ["4", "**26.50**", "2.50"]
    assert rows["pets"][:3] == ["2", "6.00", "6.00"]
    assert rows["bound"][4] == "299"
    assert rows["pets"][4] == "240–242"  # seeds ending at different steps show the range
    # Fewer than 5 seeds: the range of the seeds, labelled so, not an interval.
    assert rows["bound"][3] == "range [10.00, 30.00]"
    assert rows["mbpo"][3] == "range [1.00, 100.00]"
    assert rows["pets"][3] == "range [5.00, 7.00]"
    assert "too few" in task_section(text, TASK).split("### AUC", 1)[0]
    assert "bootstrap [" not in task_section(text, TASK) and "95% CI" not in text
    cartpole = table_rows(text, "CartPoleEnv")
    assert cartpole["pets"] == ["1", "50.00", "50.00", "range [50.00, 50.00]", "240"]  # not bold
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


def test_diagnostics_draw_every_arm_with_a_discriminator(
    runs_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    for i in range(2):  # an ablation logs the same columns; a run with only NaN ones does not
        df = mbpo_style(5.0, True, i)
        make_run(runs_dir / "abl" / str(i), "bound_no_policy_term", i, df)
    df = mbpo_style(5.0, True, 0)
    df["disc_accuracy"] = df["kl_estimate"] = math.nan
    make_run(runs_dir / "nan" / "0", "bound_no_model_term", 0, df)
    rows = report.diagnostic_rows(report.find_runs(runs_dir))
    assert [(task, algorithm, sorted(r.seed for r in rs)) for task, algorithm, rs in rows] == [
        (TASK, "bound", [0, 1, 2]),
        (TASK, "bound_no_policy_term", [0, 1]),
    ]
    assert is_png(report.plot_bound_diagnostics(report.find_runs(runs_dir), tmp_path / "d.png"))


def test_no_bound_runs_no_diagnostics(runs_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    runs = [r for r in report.find_runs(runs_dir) if r.algorithm != "bound"]
    assert report.plot_bound_diagnostics(runs, tmp_path / "diag.png") is None
    assert not (tmp_path / "diag.png").exists()


def sac_log(alphas: list[float]) -> pd.DataFrame:
    """mbrl's train.csv: a row per logged batch of SAC updates."""
    n = len(alphas)
    return pd.DataFrame(
        {
            "actor_loss": np.linspace(-5.0, -50.0, n),
            "alpha_value": alphas,
            "batch_reward": np.ones(n),
            "critic_loss": np.linspace(2.0, 20.0, n),
            "step": 1000 * np.arange(1, n + 1),
        }
    )


def test_sac_diagnostics_draw_the_runs_with_a_sac_log(
    runs_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    runs = report.find_runs(runs_dir)
    assert report.plot_sac_diagnostics(runs, tmp_path / "none.png") is None  # no train.csv
    assert not (tmp_path / "none.png").exists()
    bound = [r for r in runs if r.algorithm == "bound"]
    sac_log([0.8, 0.4, 0.2]).to_csv(bound[0].path / "train.csv")
    sac_log([0.8, 0.3]).drop(columns="alpha_value").to_csv(bound[1].path / "train.csv")
    (bound[2].path / "train.csv").write_text("")
    logs = {r.seed: report.read_sac_log(r) for r in bound}
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "train.csv").write_bytes(b"\xff\xfe\x00\x81")
    assert report.read_sac_log(dataclasses.replace(bound[0], path=tmp_path / "binary")) is None
    assert logs[bound[1].seed] is None and logs[bound[2].seed] is None  # column missing; empty
    assert list(logs[bound[0].seed]["alpha_value"]) == [0.8, 0.4, 0.2]
    assert all(report.read_sac_log(r) is None for r in runs if r.algorithm == "pets")
    assert is_png(report.plot_sac_diagnostics(runs, tmp_path / "sac.png"))
    names = [p.name for p in report.make_report(runs_dir, tmp_path / "out")]
    assert names == ["report.md", "curves.png", "bound_diagnostics.png", "sac_diagnostics.png"]


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


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """``mbrl-bound-report ARGS`` in this process: exit code, stdout, stderr."""
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_writes_report_and_plots(runs_dir: pathlib.Path, capsys) -> None:
    make_run(runs_dir / "empty", "mbpo", 9, "")
    code, out, err = run_cli(capsys, str(runs_dir))
    assert code == 0, err
    assert err.startswith("mbrl-bound-report: warning: skipped 1 run folder")
    written = [pathlib.Path(p) for p in out.split()]
    names = ["report.md", "curves.png", "bound_diagnostics.png"]
    assert written == [runs_dir / n for n in names]
    assert is_png(runs_dir / "curves.png") and is_png(runs_dir / "bound_diagnostics.png")
    assert "**26.50**" in (runs_dir / "report.md").read_text()


def test_cli_reports_the_runs_of_several_folders_together(
    runs_dir: pathlib.Path, tmp_path: pathlib.Path, capsys
) -> None:
    # the MBPO arm in a folder of its own, as a second compare command leaves it
    other = tmp_path / "other"
    (runs_dir / "mbpo").rename(other)
    alone = report.find_runs(runs_dir)
    assert "mbpo" not in {r.algorithm for r in alone}
    # a folder inside another is searched once: its runs are not counted twice
    both = report.find_runs([runs_dir, other, other / "default"])
    assert len(both) == len(alone) + len(MBPO_FINALS)
    code, out, err = run_cli(capsys, str(runs_dir), str(other), "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "same task, algorithm and seed" not in err
    text = (tmp_path / "r" / "report.md").read_text()
    assert "Paired difference against mbpo" in text  # bound paired with the other folder's mbpo
    assert table_rows(text, TASK)["mbpo"][0] == str(len(MBPO_FINALS))
    # several folders and no --out: one line, exit 2, nothing written
    code, out, err = run_cli(capsys, str(runs_dir), str(other))
    assert code == 2 and out == ""
    assert err.strip() == (
        "mbrl-bound-report: error: a report on several directories needs an output "
        "directory (--out)"
    )
    assert not (runs_dir / "report.md").exists()


def test_cli_bad_dir_is_one_line_exit_2(tmp_path: pathlib.Path, capsys) -> None:
    code, out, err = run_cli(capsys, str(tmp_path / "missing"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mbrl-bound-report: error: ") and "does not exist" in lines[0]
    assert out == ""


def test_the_console_script_is_the_cli_module(tmp_path: pathlib.Path) -> None:
    pyproject = (pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'mbrl-bound-report = "mbrl_bound_plugin.report.cli:main"' in pyproject
    # python -m runs it too, and says nothing but the error
    cmd = [sys.executable, "-m", "mbrl_bound_plugin.report.cli", str(tmp_path / "missing")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mbrl-bound-report: error: ")
    assert len(proc.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------ AUC, intervals, pairs


def bare_run(steps: list[float], returns: list[float], algorithm: str = "pets") -> report.Run:
    df = pd.DataFrame({"env_step": steps, "episode_reward": returns})
    return report.Run(pathlib.Path("."), algorithm, TASK, 0, df)


def test_auc_is_the_mean_return_over_the_common_span() -> None:
    # a: 0 -> 100 over steps 0..100, then flat at 100 to step 200.
    # b: 10 from step 50 to 150, then up to 40 at step 300.
    # Common span: 50 (b's first step) to 200 (a's last step), width 150.
    # a: from (50, 50) to (100, 100), area 3750; flat 100 over 100..200, area 10000.
    # b: flat 10 over 50..150, area 1000; from (150, 10) to (200, 20), area 750.
    a = bare_run([0.0, 100.0, 200.0], [0.0, 100.0, 100.0])
    b = bare_run([50.0, 150.0, 300.0], [10.0, 10.0, 40.0])
    aucs, start, end = report.area_under_curves([a, b])
    assert (start, end) == (50.0, 200.0)
    np.testing.assert_allclose(aucs, [(3750 + 10000) / 150, (1000 + 750) / 150])
    # Alone, a covers 0..200: the span follows the runs passed.
    aucs, start, end = report.area_under_curves([a])
    assert (start, end) == (0.0, 200.0)
    np.testing.assert_allclose(aucs, [(5000 + 10000) / 200])
    # Rows out of step order: the curve is the same.
    shuffled = bare_run([200.0, 0.0, 100.0], [100.0, 0.0, 100.0])
    np.testing.assert_allclose(report.area_under_curves([shuffled])[0], [75.0])


def test_auc_without_a_common_span_is_nan() -> None:
    aucs, start, end = report.area_under_curves(
        [bare_run([0.0, 10.0], [1.0, 1.0]), bare_run([20.0, 30.0], [2.0, 2.0])]
    )
    assert (start, end) == (20.0, 10.0)
    assert np.isnan(aucs).all()
    aucs, _, _ = report.area_under_curves([bare_run([5.0], [1.0])])  # a single step
    assert np.isnan(aucs).all()


def test_auc_span_is_the_tasks_not_the_algorithms(
    runs_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # Bound and mbpo log at 99, 199, 299, returning final / 4, final / 2, final; pets
    # seed 0 ends at step 240, the earliest end on the task, so every run of the task is
    # averaged over 99..240: from f/4 to f/2 over 100 steps, then 41 steps from f/2
    # towards f (slope f/200), reaching f/2 + 41 f/200.
    def expected(f: float) -> float:
        area = (f / 4 + f / 2) / 2 * 100 + (f / 2 + f / 2 + 41 * f / 200) / 2 * 41
        return area / (240 - 99)

    table = report.run_table(report.find_runs(runs_dir))
    on_task = table[table["task"] == TASK]
    assert set(on_task["auc_start"]) == {99.0} and set(on_task["auc_end"]) == {240.0}
    for algorithm, finals in (("bound", BOUND_FINALS), ("mbpo", MBPO_FINALS)):
        got = on_task[on_task["algorithm"] == algorithm]["auc"]
        np.testing.assert_allclose(got, [expected(f) for f in finals])
    stats = report.summarize_metrics(report.find_runs(runs_dir))
    assert stats.loc[(TASK, "bound"), "auc_mean"] == pytest.approx(expected(20.0))
    text = report.write_report(report.find_runs(runs_dir), tmp_path / "out").read_text()
    assert (
        "AUC span: env steps 99–240, common to the task's 9 runs; the latest to start: "
        "bound, mbpo (7 runs), the first to end: pets seed 0." in task_section(text, TASK)
    )
    # CartPole's single run: its own span, 17..240, over four pets episodes.
    cartpole = table[table["task"] == "CartPoleEnv"].iloc[0]
    area = (1 + 2) / 2 * 22 + (2 + 3) / 2 * 61 + (3 + 50) / 2 * 140
    assert cartpole["auc"] == pytest.approx(area / (240 - 17))


def test_seed_interval_is_the_range_below_five_seeds() -> None:
    assert report.MIN_SEEDS_FOR_INTERVAL == 5
    assert report.seed_interval([3.0, 1.0, 2.0, 8.0]) == (1.0, 8.0, report.INTERVAL_RANGE)
    assert report.seed_interval([4.0]) == (4.0, 4.0, report.INTERVAL_RANGE)
    values = [1.0, 2.0, 3.0, 8.0, 6.0]
    low, high, kind = report.seed_interval(values)
    assert kind == report.INTERVAL_BOOTSTRAP
    assert (low, high) == report.bootstrap_ci(values)
    assert 1.0 < low < np.mean(values) < high < 8.0  # the mean of 5 resampled seeds
    nan_low, nan_high, none = report.seed_interval([])
    assert math.isnan(nan_low) and math.isnan(nan_high) and none == ""
    # NaNs are dropped before counting seeds.
    assert report.seed_interval([1.0, math.nan, 2, 3, 4])[2] == report.INTERVAL_RANGE


MBPO5 = [10.0, 20.0, 30.0, 40.0, 50.0]  # seeds 0-4
BOUND_DIFFS = [5.0, -3.0, 0.0, 8.0, 2.0]  # bound - mbpo per seed: mean 2.4, 3 wins 1 tie 1 loss
ABLATION_DIFFS = [-1.0, -2.0, 4.0]  # bound_no_model_term, seeds 0-2: mean 1/3
AUC_PER_FINAL = (1 / 4 + 1 / 2) / 2 * 100 / 200 + (1 / 2 + 1) / 2 * 100 / 200  # = 0.5625


@pytest.fixture
def benchmark_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """Five seeds of mbpo and bound, three of an ablation, unpaired seeds on both sides."""
    root = tmp_path / "bench"
    for s, final in enumerate(MBPO5):
        make_run(root / f"mbpo_resumable_seed{s}", "mbpo_resumable", s, mbpo_style(final, False, s))
        bound = final + BOUND_DIFFS[s]
        make_run(root / f"bound_seed{s}", "bound", s, mbpo_style(bound, True, s))
    for s, diff in enumerate(ABLATION_DIFFS):
        run = mbpo_style(MBPO5[s] + diff, True, s)
        make_run(root / f"bound_no_model_term_seed{s}", "bound_no_model_term", s, run)
    make_run(root / "bound_seed7", "bound", 7, mbpo_style(99.0, True, 7))  # no mbpo seed 7
    make_run(root / "mbpo_seed9", "mbpo", 9, mbpo_style(99.0, False, 9))  # no bound seed 9
    return root


def test_paired_differences_match_seeds(benchmark_dir: pathlib.Path) -> None:
    runs = report.find_runs(benchmark_dir)
    pairs = report.paired_differences(runs)
    bound = pairs[pairs["algorithm"] == "bound"]
    assert list(bound["seed"]) == [0, 1, 2, 3, 4]  # 7 and 9 have no partner
    np.testing.assert_allclose(bound["final_diff"], BOUND_DIFFS)
    np.testing.assert_allclose(bound["baseline_final"], MBPO5)
    # All runs logged at 99, 199, 299: the AUC is 0.5625 x the final return.
    np.testing.assert_allclose(bound["auc_diff"], [AUC_PER_FINAL * d for d in BOUND_DIFFS])
    ablation = pairs[pairs["algorithm"] == "bound_no_model_term"]
    np.testing.assert_allclose(ablation["final_diff"], ABLATION_DIFFS)
    assert set(pairs["algorithm"]) == {"bound", "bound_no_model_term"}

    summary = report.summarize_paired(runs)
    row = summary.loc[(TASK, "bound")]
    assert row["pairs"] == 5
    assert row["final_mean"] == pytest.approx(2.4)
    assert row["final_interval"] == report.INTERVAL_BOOTSTRAP
    assert -3.0 < row["final_low"] < 2.4 < row["final_high"] < 8.0
    assert (row["final_wins"], row["final_ties"], row["final_losses"]) == (3, 1, 1)
    assert (row["auc_wins"], row["auc_ties"], row["auc_losses"]) == (3, 1, 1)
    assert row["auc_mean"] == pytest.approx(AUC_PER_FINAL * 2.4)
    assert row["left_out"] == "seed 7: no mbpo run; mbpo seed 9: no bound run"
    small = summary.loc[(TASK, "bound_no_model_term")]
    assert small["pairs"] == 3 and small["final_interval"] == report.INTERVAL_RANGE
    assert (small["final_low"], small["final_high"]) == (-2.0, 4.0)
    assert small["final_mean"] == pytest.approx(1 / 3)
    assert (small["final_wins"], small["final_ties"], small["final_losses"]) == (1, 0, 2)


def test_repeated_seeds_are_left_out_of_the_pairs(benchmark_dir: pathlib.Path) -> None:
    make_run(benchmark_dir / "bound_seed1_again", "bound", 1, mbpo_style(0.0, True, 1))
    with pytest.warns(RunFolderWarning, match="seed 1 x2"):
        runs = report.find_runs(benchmark_dir)
    pairs = report.paired_differences(runs)
    assert list(pairs[pairs["algorithm"] == "bound"]["seed"]) == [0, 2, 3, 4]
    row = report.summarize_paired(runs).loc[(TASK, "bound")]
    assert row["pairs"] == 4 and row["final_interval"] == report.INTERVAL_RANGE
    assert row["final_mean"] == pytest.approx((5 + 0 + 8 + 2) / 4)
    assert (
        row["left_out"] == "seed 7: no mbpo run; mbpo seed 9: no bound run; seed 1: repeated runs"
    )


def test_report_with_five_seeds(benchmark_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    text = report.write_report(report.find_runs(benchmark_dir), tmp_path / "out").read_text()
    final = table_rows(text, TASK)
    assert list(final) == ["bound", "bound_no_model_term", "mbpo"]
    assert final["bound"][0] == "6" and final["mbpo"][0] == "6"  # seeds 7 and 9 count here
    assert final["bound_no_model_term"][3] == "range [9.00, 34.00]"
    low, high = (
        float(v) for v in final["bound"][3].removeprefix("95% bootstrap [")[:-1].split(",")
    )
    bound_finals = [m + d for m, d in zip(MBPO5, BOUND_DIFFS, strict=True)] + [99.0]
    assert min(bound_finals) < low < np.mean(bound_finals) < high < max(bound_finals)
    assert "95% percentile bootstrap interval of the mean final return" in text
    auc = table_rows(text, TASK, "AUC")
    assert auc["mbpo"][1] == f"{AUC_PER_FINAL * np.mean([*MBPO5, 99.0]):.2f}"
    assert auc["mbpo"][3].startswith("95% bootstrap [")
    assert "AUC span: env steps 99–299, common to the task's 15 runs." in text

    summary = table_rows(text, TASK, "Paired difference against mbpo")
    assert list(summary) == ["bound", "bound_no_model_term"]
    assert summary["bound"][:2] == ["5", "+2.40"]
    assert summary["bound"][2].startswith("95% bootstrap [")
    assert summary["bound"][3] == "3/1/1"
    assert summary["bound"][4] == f"{AUC_PER_FINAL * 2.4:+.2f}"
    assert summary["bound_no_model_term"][:4] == ["3", "+0.33", "range [-2.00, 4.00]", "1/0/2"]
    left_out = "Left out of the pairs: bound: seed 7: no mbpo run; mbpo seed 9: no bound run; "
    left_out += "bound_no_model_term: mbpo seeds 3, 4, 9: no bound_no_model_term run."
    assert left_out in text
    section = task_section(text, TASK).split("### Paired difference against mbpo", 1)[1]
    per_seed = tables(section)[1]
    assert [(row[0], row[1], row[4]) for row in per_seed] == [
        *[("bound", str(s), f"{d:+.2f}") for s, d in enumerate(BOUND_DIFFS)],
        *[("bound_no_model_term", str(s), f"{d:+.2f}") for s, d in enumerate(ABLATION_DIFFS)],
    ]
    assert "### Success" not in text  # no threshold for InvertedPendulum


def test_a_repeated_baseline_seed_and_an_unmatched_arm(tmp_path: pathlib.Path) -> None:
    # mbpo runs seed 1 twice: seed 1 pairs with no arm. bound: seeds 0 and 2 pair, with
    # differences 12 - 10 = +2 and 27 - 30 = -3 (mean -0.5, 1 win, 1 loss). The ablation
    # bound_no_model_term: seed 0 pairs (10 - 10 = 0, a tie), seed 3 has no mbpo run and
    # mbpo seed 2 no ablation run. bound_no_policy_term: seed 5 alone, no pair at all.
    root = tmp_path / "exp"
    mbpo = {"0": (0, 10.0), "1": (1, 20.0), "1again": (1, 25.0), "2": (2, 30.0)}
    for name, (seed, final) in mbpo.items():
        make_run(root / f"mbpo{name}", "mbpo", seed, mbpo_style(final, False, seed))
    for seed, final in ((0, 12.0), (1, 18.0), (2, 27.0)):
        make_run(root / f"bound{seed}", "bound", seed, mbpo_style(final, True, seed))
    for seed, final in ((0, 10.0), (3, 50.0)):
        make_run(root / f"ablation{seed}", "bound_no_model_term", seed, mbpo_style(final, True, 0))
    make_run(root / "alone", "bound_no_policy_term", 5, mbpo_style(7.0, True, 5))
    with pytest.warns(RunFolderWarning, match="mbpo on .* seed 1 x2"):
        runs = report.find_runs(root)

    pairs = report.paired_differences(runs)
    assert list(pairs.columns) == list(report.PAIR_COLUMNS)
    assert list(zip(pairs["algorithm"], pairs["seed"], strict=True)) == [
        ("bound", 0),
        ("bound", 2),
        ("bound_no_model_term", 0),
    ]
    np.testing.assert_allclose(pairs["final_diff"], [2.0, -3.0, 0.0])
    np.testing.assert_allclose(pairs["baseline_final"], [10.0, 30.0, 10.0])
    np.testing.assert_allclose(pairs["auc_diff"], [AUC_PER_FINAL * d for d in (2, -3, 0)])

    summary = report.summarize_paired(runs)
    assert list(summary.index.get_level_values("algorithm")) == [
        "bound",
        "bound_no_model_term",
        "bound_no_policy_term",
    ]
    bound = summary.loc[(TASK, "bound")]
    assert (bound["pairs"], bound["final_mean"]) == (2, pytest.approx(-0.5))
    assert (bound["final_low"], bound["final_high"]) == (-3.0, 2.0)
    assert (bound["final_wins"], bound["final_ties"], bound["final_losses"]) == (1, 0, 1)
    assert bound["auc_mean"] == pytest.approx(-0.5 * AUC_PER_FINAL)
    assert bound["left_out"] == "seed 1: repeated runs"
    ablation = summary.loc[(TASK, "bound_no_model_term")]
    assert (ablation["final_wins"], ablation["final_ties"], ablation["final_losses"]) == (0, 1, 0)
    assert ablation["left_out"] == (
        "seed 3: no mbpo run; mbpo seed 2: no bound_no_model_term run; seed 1: repeated runs"
    )
    alone = summary.loc[(TASK, "bound_no_policy_term")]
    assert (alone["pairs"], alone["final_n"], alone["final_interval"]) == (0, 0, "")
    assert math.isnan(alone["final_mean"]) and alone["final_wins"] == 0

    text = report.write_report(runs, tmp_path / "out").read_text()
    rows = table_rows(text, TASK, "Paired difference against mbpo")
    assert rows["bound"][:4] == ["2", "-0.50", "range [-3.00, 2.00]", "1/0/1"]
    assert rows["bound_no_policy_term"][:4] == ["0", "n/a", "n/a", "0/0/0"]
    section = task_section(text, TASK).split("### Paired difference against mbpo", 1)[1]
    per_seed = tables(section.split("### ", 1)[0])[1]
    assert [(r[0], r[1], r[4]) for r in per_seed] == [
        ("bound", "0", "+2.00"),
        ("bound", "2", "-3.00"),
        ("bound_no_model_term", "0", "+0.00"),
    ]


def test_every_table_row_has_its_headers_cells(
    benchmark_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    text = report.write_report(report.find_runs(benchmark_dir), tmp_path / "out").read_text()
    blocks = [b for b in text.split("\n\n") if b.startswith("|")]
    assert len(blocks) == 5  # final return, AUC, paired summary, per seed, runs
    for block in blocks:
        lines = block.splitlines()
        widths = {line.count("|") for line in lines}
        assert len(widths) == 1, block
        separator = [c.strip() for c in lines[1].strip("|").split("|")]
        assert separator[0].startswith(":")  # the first column (a name) left-aligned
        assert all(set(c) <= set(":-") for c in separator)


def test_algorithm_colors_take_an_iterator(tmp_path: pathlib.Path) -> None:
    colors = report.algorithm_colors(name for name in ["zeta", "bound", "alpha"])
    assert colors == {
        "bound": report.ALGORITHM_COLORS["bound"],
        "alpha": report.OTHER_COLORS[0],
        "zeta": report.OTHER_COLORS[1],
    }
    for seed in range(2):
        make_run(tmp_path / "runs" / f"z{seed}", "zeta", seed, mbpo_style(1.0, False, seed))
    assert is_png(report.plot_curves(report.find_runs(tmp_path / "runs"), tmp_path / "c.png"))


def test_no_paired_section_without_mbpo(runs_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    text = report.write_report(report.find_runs(runs_dir), tmp_path / "out").read_text()
    assert "### Paired difference against mbpo" in task_section(text, TASK)
    assert "### Paired" not in task_section(text, "CartPoleEnv")  # pets alone
    assert set(report.paired_differences(report.find_runs(runs_dir))["seed"]) == {0, 1, 2}


# ------------------------------------------------------------------------ success

MAZE = "mbrl_bound/PointMaze-v0"
NEVER = sum([0.01] * 150)  # 150 steps outside the goal, summed as an episode is: not 1.5
ONCE = 1.0 + sum([0.01] * 149)  # one step in the goal


def maze_rows(returns: list[float]) -> pd.DataFrame:
    steps = [300.0 * (i + 1) - 1 for i in range(len(returns))]
    return pd.DataFrame({"env_step": steps, "episode_reward": returns})


def test_maze_threshold_separates_failure_from_success() -> None:
    threshold = report.SUCCESS_THRESHOLDS[MAZE]
    assert 1.5 < threshold < 2.49
    assert list(report.is_success([NEVER, ONCE, 150.0], threshold)) == [False, True, True]


def test_last_rows_is_the_last_quarter() -> None:
    assert [report.last_rows(n) for n in (1, 3, 4, 5, 8, 9, 100)] == [1, 1, 1, 2, 2, 3, 25]


@pytest.fixture(params=[MAZE, "mbrl_bound/PointMaze-v1"])
def maze(request: pytest.FixtureRequest) -> str:
    """The maze's versions: v1 (the noise calibrated on MBPO) is scored as v0."""
    return request.param


@pytest.fixture
def maze_dir(tmp_path: pathlib.Path, maze: str) -> pathlib.Path:
    root = tmp_path / "maze"
    env = f"gym___{maze}"
    bound = [
        [NEVER] * 6 + [2.6, 3.0],  # final yes, last 2 rows: 2/2, ever
        [NEVER, 2.5] + [NEVER] * 6,  # final no, last 2 rows: 0/2, ever
        [NEVER] * 8,  # never
        [NEVER] * 8 + [ONCE],  # final yes, last 3 rows (ceil 9/4): 1/3, ever
    ]
    for s, returns in enumerate(bound):
        make_run(root / f"bound{s}", "bound", s, maze_rows(returns), env=env)
    for s in range(2):
        make_run(root / f"mbpo{s}", "mbpo_resumable", s, maze_rows([NEVER] * 8), env=env)
    make_run(root / "pendulum", "mbpo", 0, mbpo_style(5.0, False, 0))
    return root


def test_success_rates_on_the_maze(
    maze_dir: pathlib.Path, maze: str, tmp_path: pathlib.Path
) -> None:
    runs = report.find_runs(maze_dir)
    assert {r.task for r in runs} == {maze, TASK}
    rates = report.success_rates(runs)
    assert list(rates.index) == [(maze, "bound"), (maze, "mbpo")]  # no threshold for TASK
    bound = rates.loc[(maze, "bound")]
    assert (bound["seeds"], bound["final_successes"], bound["ever_successes"]) == (4, 2, 3)
    assert bound["last_rate"] == pytest.approx((1 + 0 + 0 + 1 / 3) / 4)
    mbpo = rates.loc[(maze, "mbpo")]
    assert (mbpo["final_successes"], mbpo["ever_successes"], mbpo["last_rate"]) == (0, 0, 0.0)

    text = report.write_report(runs, tmp_path / "out").read_text()
    section = task_section(text, maze)
    assert f"### Success (episode return > {report.SUCCESS_THRESHOLDS[maze]:.4g})" in section
    rows = table_rows(text, maze, "Success")
    assert rows["bound"] == ["4", "2/4", "0.33", "3/4"]
    assert rows["mbpo"] == ["2", "0/2", "0.00", "0/2"]
    assert "### Success" not in task_section(text, TASK)

    # Other tasks join with a threshold of their own.
    rates = report.success_rates(runs, {TASK: 4.0})
    assert list(rates.index) == [(TASK, "mbpo")]
    assert rates.loc[(TASK, "mbpo"), "final_successes"] == 1


# ------------------------------------------------------------------ order, colors


def test_ablations_are_ordered_and_colored(tmp_path: pathlib.Path) -> None:
    names = ["zeta", "pets", "mbpo", "bound_no_policy_term", "bound_no_model_term", "bound"]
    for s, name in enumerate(names):
        make_run(tmp_path / name, name, 0, mbpo_style(float(s), False, 0))
    assert [r.algorithm for r in report.find_runs(tmp_path)] == names[::-1]
    colors = report.algorithm_colors(names)
    assert colors["bound_no_model_term"] == report.ALGORITHM_COLORS["bound_no_model_term"]
    assert colors["bound_no_policy_term"] == report.ALGORITHM_COLORS["bound_no_policy_term"]
    assert len(set(colors.values())) == len(names)
    fixed = list(report.ALGORITHM_COLORS.values())
    assert len(set(fixed + list(report.OTHER_COLORS))) == len(fixed) + len(report.OTHER_COLORS)


def test_runs_that_stopped_on_an_error_are_marked(runs_dir: pathlib.Path, tmp_path) -> None:
    stopped = runs_dir / "bound" / "multirun" / "1"
    (stopped / "stopped.txt").write_text("SAC loss is not finite at environment step 250\n")
    (runs_dir / "bound" / "multirun" / "2" / "stopped.txt").write_text("")  # reason lost
    runs = report.find_runs(runs_dir)
    by_seed = {r.seed: r.stopped for r in runs if r.algorithm == "bound"}
    assert by_seed == {0: "", 1: "SAC loss is not finite at environment step 250", 2: "stopped"}
    assert all(r.stopped == "" for r in runs if r.algorithm != "bound")
    text = report.write_report(runs, tmp_path / "out").read_text()
    section = task_section(text, TASK)
    assert "Stopped before the end of their budget** (2 of 9 runs" in section
    assert "- bound seed 1, after env step 299: SAC loss is not finite" in section
    assert "- bound seed 2, after env step 299: stopped" in section
    assert "Stopped before" not in task_section(text, "CartPoleEnv")
    runs_table = text.split("## Runs", 1)[1]
    assert runs_table.count("(stopped)") == 2


def test_a_stopped_run_neither_cuts_the_auc_span_nor_gets_an_auc(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "exp"
    for seed in range(2):
        make_run(root / f"mbpo{seed}", "mbpo", seed, mbpo_style(8.0, False, seed))
    early = mbpo_style(4.0, True, 0).iloc[:2]  # rows at env steps 99 and 199 only
    stopped = make_run(root / "bound0", "bound", 0, early)
    make_run(root / "bound1", "bound", 1, mbpo_style(12.0, True, 1))
    runs = report.find_runs(root)
    table = report.run_table(runs).set_index(["algorithm", "seed"])
    assert list(table["auc_end"].unique()) == [199.0]  # a short run (in progress) cuts it
    (stopped / "stopped.txt").write_text("model loss is not finite\n")
    runs = report.find_runs(root)
    table = report.run_table(runs).set_index(["algorithm", "seed"])
    assert list(table["auc_end"].unique()) == [299.0]  # a stopped one does not
    # bound seed 1's returns 3, 6, 12 at steps 99, 199, 299: trapezoids over 99-299
    assert table.loc[("bound", 1), "auc"] == pytest.approx(((3 + 6) / 2 + (6 + 12) / 2) / 2)
    assert math.isnan(table.loc[("bound", 0), "auc"])
    assert table.loc[("bound", 0), "final"] == 2.0  # its last evaluation
    stats = report.summarize_metrics(runs).loc[(TASK, "bound")]
    assert (stats["final_n"], stats["auc_n"]) == (2, 1)
    paired = report.summarize_paired(runs).loc[(TASK, "bound")]
    assert (paired["final_n"], paired["auc_n"]) == (2, 1)
    text = report.write_report(runs, tmp_path / "out").read_text()
    assert "AUC span: env steps 99–299" in text and "no AUC: the span is the other runs'" in text
    assert table_rows(text, TASK)["bound"][0] == "2"  # seeds with a final return
    assert table_rows(text, TASK, "AUC")["bound"][0] == "1"  # seeds with an AUC
