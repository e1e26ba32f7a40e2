"""wall_time.csv: one row per session of a run, however the session ends."""

from __future__ import annotations

import csv
import pathlib
import time

import pytest

from mbrl_bound_plugin.errors import NumericalError, RunInterrupted
from mbrl_bound_plugin.util import wall_time


def _rows(path: pathlib.Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_each_session_appends_a_row_and_read_sums_them(tmp_path: pathlib.Path):
    path = tmp_path / wall_time.WALL_TIME_FILE
    with wall_time.recording(path):
        time.sleep(0.3)
    with wall_time.recording(path):
        _busy(0.3)
    rows = _rows(path)
    assert [r["ended"] for r in rows] == ["completed", "completed"]
    assert tuple(rows[0]) == wall_time.COLUMNS
    assert float(rows[0]["wall_s"]) >= 0.25  # slept: wall time, hardly any CPU time
    assert float(rows[0]["cpu_s"]) < float(rows[0]["wall_s"])
    assert float(rows[1]["cpu_s"]) >= 0.25  # busy: CPU time
    cost = wall_time.read(tmp_path)
    assert cost.sessions == 2
    assert cost.wall_s == pytest.approx(sum(float(r["wall_s"]) for r in rows))
    assert cost.cpu_s == pytest.approx(sum(float(r["cpu_s"]) for r in rows))


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
