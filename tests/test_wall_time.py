"""wall_time.csv: one row per session of a run, however the session ends."""

from __future__ import annotations

import csv
import pathlib
import types

import pytest

from mbrl_bound_plugin.errors import NumericalError, RunInterrupted
from mbrl_bound_plugin.util import wall_time


def _rows(path: pathlib.Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


class FakeClocks:
    """The module's two clocks, moved by hand: no test waits for, or races, real time."""

    def __init__(self) -> None:
        self.wall, self.cpu = 1000.0, 50.0

    def sleep(self, seconds: float) -> None:
        self.wall += seconds

    def busy(self, seconds: float) -> None:
        self.wall += seconds
        self.cpu += seconds


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> FakeClocks:
    fake = FakeClocks()
    monkeypatch.setattr(wall_time, "time", types.SimpleNamespace(perf_counter=lambda: fake.wall))
    monkeypatch.setattr(wall_time, "_cpu_seconds", lambda: fake.cpu)
    return fake


def test_each_session_appends_a_row_and_read_sums_them(tmp_path: pathlib.Path, clocks):
    path = tmp_path / wall_time.WALL_TIME_FILE
    with wall_time.recording(path):
        clocks.sleep(12.5)
        clocks.busy(0.3)
    with wall_time.recording(path):
        clocks.busy(30.0)
    rows = _rows(path)
    assert [r["ended"] for r in rows] == ["completed", "completed"]
    assert tuple(rows[0]) == wall_time.COLUMNS
    # slept: wall time, hardly any CPU time; busy: as much CPU time as wall time
    assert [(r["wall_s"], r["cpu_s"]) for r in rows] == [("12.8", "0.3"), ("30.0", "30.0")]
    cost = wall_time.read(tmp_path)
    assert cost.sessions == 2
    assert cost.wall_s == pytest.approx(42.8)
    assert cost.cpu_s == pytest.approx(30.3)


def test_the_cpu_clock_is_the_process_user_and_system_time(monkeypatch: pytest.MonkeyPatch):
    times = types.SimpleNamespace(user=3.5, system=1.25)
    monkeypatch.setattr(wall_time.os, "times", lambda: times)
    assert wall_time._cpu_seconds() == 4.75


@pytest.mark.parametrize(
    ("error", "ended"),
    [
        (RunInterrupted(15, 7, pathlib.Path("/runs/x/checkpoints/7.pt")), "interrupted"),
        (KeyboardInterrupt(), "interrupted"),
        (SystemExit(-1), "interrupted"),  # a launcher's handler ending the process
        (NumericalError("model loss is not finite"), "stopped"),
        (ValueError("a bug"), "failed"),
    ],
)
def test_a_session_ended_by_an_error_is_recorded_and_the_error_goes_on(tmp_path, error, ended):
    path = tmp_path / wall_time.WALL_TIME_FILE
    with pytest.raises(type(error)), wall_time.recording(path):
        raise error
    assert [r["ended"] for r in _rows(path)] == [ended]


def test_a_relative_path_is_where_the_block_started(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    with wall_time.recording():
        monkeypatch.chdir(tmp_path / "elsewhere")
    assert (tmp_path / wall_time.WALL_TIME_FILE).is_file()
    assert not (tmp_path / "elsewhere" / wall_time.WALL_TIME_FILE).exists()


def test_an_unwritable_file_warns_and_the_run_goes_on(tmp_path: pathlib.Path):
    path = tmp_path / "no such folder" / wall_time.WALL_TIME_FILE
    with pytest.warns(wall_time.WallTimeWarning, match="could not write"):
        with wall_time.recording(path):
            result = 1 + 1
    assert result == 2
    assert not path.exists()


def test_read_skips_rows_that_do_not_parse_and_needs_one_that_does(tmp_path: pathlib.Path):
    assert wall_time.read(tmp_path) is None  # no file
    path = tmp_path / wall_time.WALL_TIME_FILE
    path.write_text(
        "started,wall_s,cpu_s,ended\n2026-11-25T00:00:00+00:00,60.0,30.0,completed\n2026-11-25T01:00:00+00:00,12"
    )
    assert wall_time.read(tmp_path) == wall_time.Cost(60.0, 30.0, 1)
    path.write_text("started,wall_s,cpu_s,ended\n")
    assert wall_time.read(tmp_path) is None
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert wall_time.read(tmp_path) is None


def test_each_row_says_where_the_session_ran(tmp_path: pathlib.Path, clocks):
    import importlib.metadata

    import torch

    path = tmp_path / wall_time.WALL_TIME_FILE
    with wall_time.recording(path):
        clocks.busy(1.0)
    (row,) = _rows(path)
    where = row["machine"].split("; ")
    kernels = torch.backends.cpu.get_cpu_capability()
    assert f"torch {torch.__version__} {kernels} threads {torch.get_num_threads()}" in where
    assert f"numpy {importlib.metadata.version('numpy')}" in where
    assert where[0]  # the CPU model comes first, never empty


def test_a_file_begun_without_the_machine_column_keeps_its_shape(tmp_path, clocks):
    path = tmp_path / wall_time.WALL_TIME_FILE
    path.write_text("started,wall_s,cpu_s,ended\n2026-01-01T00:00:00+00:00,10.0,9.0,interrupted\n")
    with wall_time.recording(path):
        clocks.busy(5.0)
    with path.open(newline="") as f:
        lines = list(csv.reader(f))
    assert [len(line) for line in lines] == [4, 4, 4]
    assert lines[-1][1:] == ["5.0", "5.0", "completed"]
    cost = wall_time.read(tmp_path)
    assert (cost.sessions, cost.wall_s, cost.cpu_s) == (2, 15.0, 14.0)
