"""Checkpoint files (atomic, self-checking) and the state of mbrl's objects in them."""

from __future__ import annotations

import pathlib
import random
import signal

import mbrl.util
import numpy as np
import pytest
import torch

from mbrl_bound_plugin import run_state
from mbrl_bound_plugin.checkpoint import (
    FORMAT_VERSION,
    SigtermWatch,
    changed_settings,
    find_resume_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from mbrl_bound_plugin.errors import CheckpointWriteError, UsageError


def _state(value: float) -> dict:
    return {"weights": torch.full((3, 2), value), "array": np.arange(4) * value, "n": 7}


def test_round_trip_and_keep_the_newest(tmp_path: pathlib.Path):
    for steps in (100, 200, 300):
        save_checkpoint(tmp_path, steps, _state(steps), keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step_000000200.ckpt",
        "step_000000300.ckpt",
    ]
    newest = latest_checkpoint(tmp_path)
    loaded = load_checkpoint(newest)
    assert torch.equal(loaded["weights"], torch.full((3, 2), 300.0))
    np.testing.assert_array_equal(loaded["array"], np.arange(4) * 300)
    assert loaded["n"] == 7


def test_latest_orders_by_steps_and_ignores_partial_files(tmp_path: pathlib.Path):
    save_checkpoint(tmp_path, 99, _state(1))
    save_checkpoint(tmp_path, 1000, _state(2), keep=2)
    (tmp_path / "step_000002000.ckpt.tmp").write_bytes(b"half a file")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert latest_checkpoint(tmp_path).name == "step_000001000.ckpt"
    assert latest_checkpoint(tmp_path / "missing") is None
    save_checkpoint(tmp_path, 1100, _state(3))  # a successful write clears partial files
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[: len(data) - 10], "truncated"),
        (lambda data: data[:40], "truncated"),
        (lambda data: data[:-50] + bytes([data[-50] ^ 1]) + data[-49:], "corrupt"),
        (lambda data: b"PK\x03\x04" + data[4:], "is not an mbrl-bound checkpoint"),
        (
            lambda data: data.replace(b"CHECKPOINT %d\n" % FORMAT_VERSION, b"CHECKPOINT 99\n", 1),
            "format 99",
        ),
        (lambda data: b"", "is not an mbrl-bound checkpoint"),
    ],
    ids=["short", "header-only", "bit-flip", "foreign", "version", "empty"],
)
def test_damaged_files_are_refused_naming_the_file(tmp_path, damage, message):
    path = save_checkpoint(tmp_path, 5, _state(1))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UsageError, match=message) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


@pytest.mark.skipif(not pathlib.Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_leaves_the_previous_checkpoint_whole(tmp_path: pathlib.Path):
    previous = save_checkpoint(tmp_path, 100, _state(1))
    before = previous.read_bytes()
    # the next write's temporary file is /dev/full, where every write fails with ENOSPC
    (tmp_path / "step_000000200.ckpt.tmp").symlink_to("/dev/full")
    with pytest.raises(CheckpointWriteError, match="disk is full") as err:
        save_checkpoint(tmp_path, 200, _state(2))
    assert f"{previous} is intact" in str(err.value)
    assert list_checkpoints(tmp_path) == [previous]
    assert previous.read_bytes() == before
    assert not (tmp_path / "step_000000200.ckpt.tmp").exists()


def test_resume_choices(tmp_path: pathlib.Path):
    assert find_resume_checkpoint(False, tmp_path) is None
    assert find_resume_checkpoint("auto", tmp_path) is None
    with pytest.raises(UsageError, match="holds no checkpoint"):
        find_resume_checkpoint(True, tmp_path)
    path = save_checkpoint(tmp_path, 100, _state(1))
    assert find_resume_checkpoint(True, tmp_path) == path
    assert find_resume_checkpoint("auto", tmp_path) == path
    with pytest.raises(UsageError, match="earlier run"):
        find_resume_checkpoint(False, tmp_path)
    for bad in ("yes", 1, None):
        with pytest.raises(UsageError, match="use true, false or auto"):
            find_resume_checkpoint(bad, tmp_path)


def test_changed_settings_lists_what_differs_except_resume():
    old = {"seed": 0, "resume": False, "overrides": {"num_steps": 200, "env": "a"}}
    new = {"seed": 0, "resume": True, "overrides": {"num_steps": 300, "env": "a"}, "x": 1}
    assert changed_settings(old, new) == ["overrides.num_steps: 200 -> 300", "x: None -> 1"]


# ------------------------------------------------------------- mbrl's objects


def _filled_buffer(capacity: int, rows: int, seed: int = 0) -> mbrl.util.ReplayBuffer:
    buffer = mbrl.util.ReplayBuffer(capacity, (3,), (2,), rng=np.random.default_rng(seed))
    data = np.random.default_rng(100 + seed)
    for i in range(rows):
        buffer.add(
            data.normal(size=3), data.normal(size=2), data.normal(size=3), i, i % 7 == 0, False
        )
    return buffer


@pytest.mark.parametrize("rows", [0, 5, 13], ids=["empty", "partly-full", "wrapped"])
def test_buffer_round_trip_continues_identically(rows):
    original = _filled_buffer(10, rows)
    copy = mbrl.util.ReplayBuffer(10, (3,), (2,), rng=np.random.default_rng(42))
    run_state.load_state_dict(copy, run_state.state_dict(original))
    assert (copy.cur_idx, copy.num_stored) == (original.cur_idx, original.num_stored)
    if rows:
        a, b = original.sample(6), copy.sample(6)  # same rng state, same rows
        for x, y in zip(a.astuple(), b.astuple(), strict=True):
            np.testing.assert_array_equal(x, y)
    # the next additions land at the same place
    for buffer in (original, copy):
        buffer.add(np.ones(3), np.ones(2), np.ones(3), 99.0, False, False)
    np.testing.assert_array_equal(
        original.reward[: original.num_stored], copy.reward[: copy.num_stored]
    )


def test_buffer_restored_into_another_capacity_keeps_the_newest_in_order():
    original = _filled_buffer(10, 13)  # holds rewards 3..12, oldest at cur_idx
    bigger = mbrl.util.ReplayBuffer(20, (3,), (2,))
    run_state.load_state_dict(bigger, run_state.state_dict(original))
    np.testing.assert_array_equal(bigger.get_all().rewards, np.arange(3, 13))
    smaller = mbrl.util.ReplayBuffer(4, (3,), (2,))
    run_state.load_state_dict(smaller, run_state.state_dict(original))
    np.testing.assert_array_equal(smaller.get_all().rewards, np.arange(9, 13))


def test_buffer_of_another_shape_is_refused():
    state = run_state.state_dict(_filled_buffer(10, 3))
    with pytest.raises(ValueError, match="observation shape"):
        run_state.load_state_dict(mbrl.util.ReplayBuffer(10, (4,), (2,)), state)
    with pytest.raises(ValueError, match="action shape"):
        run_state.load_state_dict(mbrl.util.ReplayBuffer(10, (3,), (1,)), state)


def test_logger_continues_its_csv_without_a_gap_or_a_second_header(tmp_path):
    fmt = [("epoch", "E", "int"), ("value", "V", "float")]

    def log_rows(logger, first, last):
        for i in range(first, last):
            logger.log_data("results", {"epoch": i, "value": i / 3})

    uninterrupted = tmp_path / "uninterrupted"
    uninterrupted.mkdir()
    logger = mbrl.util.Logger(uninterrupted)
    logger.register_group("results", fmt)
    log_rows(logger, 0, 5)

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    logger = mbrl.util.Logger(resumed)
    logger.register_group("results", fmt)
    log_rows(logger, 0, 3)
    saved = run_state.state_dict(logger)
    log_rows(logger, 3, 4)  # written after the checkpoint by the run that was killed
    logger = mbrl.util.Logger(resumed)  # the resumed run's logger starts the file afresh
    logger.register_group("results", fmt)
    run_state.load_state_dict(logger, saved)
    log_rows(logger, 3, 5)
    expected = (uninterrupted / "results.csv").read_bytes()
    assert (resumed / "results.csv").read_bytes() == expected
    assert expected.count(b"epoch") == 1


def test_logger_keeps_meters_that_were_not_dumped_yet(tmp_path):
    logger = mbrl.util.Logger(tmp_path, enable_back_compatible=True)
    logger.log("train/batch_reward", 1.0, 0)
    logger.log("train/batch_reward", 2.0, 1)
    saved = run_state.state_dict(logger)
    logger = mbrl.util.Logger(tmp_path, enable_back_compatible=True)
    run_state.load_state_dict(logger, saved)
    logger.log("train/batch_reward", 6.0, 2)
    logger.dump(3)
    text = (tmp_path / "train.csv").read_text().splitlines()
    assert text == ["batch_reward,step", "3.0,3"]


def test_rng_round_trip_replays_every_stream():
    import gymnasium as gym

    env = gym.make("Pendulum-v1")
    env.reset(seed=3)
    numpy_gen = {"rng": np.random.default_rng(1)}
    torch_gen = {"g": torch.Generator().manual_seed(2)}

    def draw():
        return (
            numpy_gen["rng"].random(),
            torch.rand(1, generator=torch_gen["g"]).item(),
            env.reset()[0].tolist(),
            env.action_space.sample().tolist(),
            torch.rand(1).item(),
            np.random.random(),
            random.random(),
        )

    streams = run_state.RandomStreams(numpy_gen, torch_gen, {"env": env})
    saved = streams.state_dict()
    first = draw()
    streams.load_state_dict(saved)
    assert draw() == first


def test_sigterm_watch_records_and_chains_to_a_framework_handler():
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    watch = SigtermWatch()
    try:
        signal.raise_signal(signal.SIGTERM)  # recorded, not fatal
        assert watch.received == [signal.SIGTERM] and watch.stops_run
    finally:
        watch.restore()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    calls = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: calls.append(signum))  # a framework's
    try:
        watch = SigtermWatch()
        signal.raise_signal(signal.SIGTERM)
        assert watch.received == [signal.SIGTERM] and not watch.stops_run
        assert calls == []  # the framework hears of it only after the checkpoint
        watch.pass_on()
        assert calls == [signal.SIGTERM] and watch.received == []
        watch.restore()
        signal.raise_signal(signal.SIGTERM)
        assert calls == [signal.SIGTERM] * 2  # its own handler is back
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        watch = SigtermWatch()  # an ignored SIGTERM stays ignored
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        watch.restore()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
