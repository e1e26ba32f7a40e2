"""Checkpoint files (atomic, self-checking) and the state of mbrl's objects in them."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import pathlib
import random
import signal
import threading

import gymnasium as gym
import mbrl.util
import numpy as np
import omegaconf
import pytest
import torch

from mbrl_bound_plugin.errors import (
    CheckpointReadError,
    CheckpointWriteError,
    RunInterrupted,
    UsageError,
)
from mbrl_bound_plugin.util import state as run_state
from mbrl_bound_plugin.util.checkpoint import (
    FORMAT_VERSION,
    Checkpointer,
    SignalWatch,
    changed_settings,
    checkpoint_path,
    find_resume_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    time_limit_signal,
    watched_signals,
)


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


def test_numpy_data_comes_back_with_its_dtype_shape_and_values(tmp_path: pathlib.Path):
    state = {
        "u32": np.arange(6, dtype=np.uint32).reshape(2, 3) * 4_000_000_000 // 5,
        "flags": np.array([True, False]),
        "strided": np.arange(10.0)[::-3],
        "scalars": [np.float32(0.1), np.float64(-np.inf), np.int64(2**40), np.bool_(True)],
        "pcg64": np.random.default_rng(7).bit_generator.state,  # two 128-bit ints
        "mt19937": np.random.RandomState(7).get_state(),  # a uint32 array in a tuple
        "python": random.Random(7).getstate(),
        "module": torch.nn.Linear(2, 1).state_dict(),
    }
    loaded = load_checkpoint(save_checkpoint(tmp_path, 1, state))
    for key in ("u32", "flags", "strided"):
        assert loaded[key].dtype == state[key].dtype
        np.testing.assert_array_equal(loaded[key], state[key])
    assert [type(x) for x in loaded["scalars"]] == [type(x) for x in state["scalars"]]
    assert loaded["scalars"] == state["scalars"]
    assert loaded["pcg64"] == state["pcg64"]
    restored = np.random.RandomState()
    restored.set_state(loaded["mt19937"])
    assert restored.random() == np.random.RandomState(7).random()
    assert loaded["python"] == state["python"]
    assert loaded["module"]._metadata == state["module"]._metadata


def test_state_of_another_type_is_refused_when_written(tmp_path: pathlib.Path):
    with pytest.raises(TypeError, match=r"state\['opts'\]\[0\] is a builtins.object"):
        save_checkpoint(tmp_path, 1, {"opts": [object()]})
    assert list_checkpoints(tmp_path) == []


def _framed(payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    """``payload`` with a checkpoint's magic line, length and digest, as written."""
    digest = hashlib.sha256(payload).hexdigest().encode()
    return b"MBRL-BOUND-CHECKPOINT %d\n%d %s\n" % (version, len(payload), digest) + payload


class _RunsACommand:
    """Unpickled by a full unpickler, this object runs ``touch <path>``."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


@pytest.mark.parametrize("where", ["load", "resume=auto"])
def test_a_checkpoint_carrying_a_pickled_callable_is_refused_in_one_line(tmp_path, where):
    marker = tmp_path / "X"
    buffer = io.BytesIO()
    torch.save({"meta": {}, "run": {"weights": _RunsACommand(marker)}}, buffer)
    planted = checkpoint_path(tmp_path / "run" / "checkpoints", 500)
    planted.parent.mkdir(parents=True)
    planted.write_bytes(_framed(buffer.getvalue()))
    with pytest.raises(CheckpointReadError) as err:
        if where == "load":
            load_checkpoint(planted)
        else:
            _checkpointer(tmp_path / "run", resume="auto")
    message = str(err.value)
    assert "\n" not in message and str(planted) in message
    assert "system" in message  # the callable it carried
    assert not marker.exists()


def test_a_checkpoint_of_the_previous_format_is_refused_in_one_line(tmp_path):
    buffer = io.BytesIO()  # (what format 3 wrote: numpy arrays pickled as they are)
    torch.save({"meta": {}, "run": {"obs": np.zeros(3)}}, buffer)
    old = checkpoint_path(tmp_path / "checkpoints", 100)
    old.parent.mkdir()
    old.write_bytes(_framed(buffer.getvalue(), version=FORMAT_VERSION - 1))
    with pytest.raises(CheckpointReadError, match="written by an older mbrl-bound") as err:
        _checkpointer(tmp_path, resume="auto")
    message = str(err.value)
    assert "\n" not in message and str(old) in message
    assert "cannot be resumed" in message and "start a new run" in message


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


def test_logger_resumed_from_an_older_version_adds_the_new_column(tmp_path):
    """A checkpoint whose CSV lacks a column the current code logs (a diagnostic added
    since) continues: the header gains the column and the earlier rows leave it empty."""
    old_fmt = [("epoch", "E", "int"), ("value", "V", "float")]
    logger = mbrl.util.Logger(tmp_path)
    logger.register_group("results", old_fmt)
    for i in range(2):
        logger.log_data("results", {"epoch": i, "value": i / 4})
    saved = run_state.state_dict(logger)

    logger = mbrl.util.Logger(tmp_path)
    logger.register_group("results", [*old_fmt, ("added", "A", "float")])
    run_state.load_state_dict(logger, saved)
    logger.log_data("results", {"epoch": 2, "value": 0.5, "added": 7.0})
    logger.log_data("results", {"epoch": 3, "value": 0.75, "added": 8.0})

    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["added", "epoch", "step", "value"]  # mbrl adds "step"
    assert [float(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert [r["added"] for r in rows] == ["", "", "7.0", "8.0"]
    assert [float(r["value"]) for r in rows] == [0.0, 0.25, 0.5, 0.75]


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


@pytest.mark.parametrize("through_a_file", [False, True], ids=["in-memory", "file"])
def test_rng_round_trip_replays_every_stream(tmp_path, through_a_file):
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
    if through_a_file:  # (read with weights_only=True: numpy's states travel as tensors)
        saved = load_checkpoint(save_checkpoint(tmp_path, 1, saved))
    first = draw()
    streams.load_state_dict(saved)
    assert draw() == first


# ------------------------------------------------------------- signals


@pytest.fixture
def signal_handlers():
    """Puts the SIGTERM, SIGUSR1 and SIGUSR2 handlers back as they were after the test."""
    signums = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
    saved = {s: signal.getsignal(s) for s in signums}
    for s in signums:
        signal.signal(s, signal.SIG_DFL)
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def _end_of_step(checkpointer: Checkpointer, env_steps: int) -> None:
    """What ``train`` does at the end of an environment step."""
    if checkpointer.due(env_steps):
        checkpointer.after_step({"counters": {"env_steps": env_steps}}, env_steps)


def _checkpointer(
    work_dir: pathlib.Path, epoch_length: int = 100, resume: bool | str = False
) -> Checkpointer:
    cfg = omegaconf.OmegaConf.create(
        {
            "algorithm": {"name": "bound"},
            "overrides": {"epoch_length": epoch_length},
            "checkpoint": {"keep": 5, "every_epochs": 1},
            "resume": resume,
        }
    )
    return Checkpointer(work_dir, cfg, gym.make("Pendulum-v1"))


def _saved_steps(work_dir: pathlib.Path) -> list[int]:
    return [int(p.stem.split("_")[1]) for p in list_checkpoints(work_dir / "checkpoints")]


def test_the_watched_signals_are_sigterm_and_submitits(monkeypatch):
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    assert time_limit_signal() == signal.SIGUSR2
    assert watched_signals() == (signal.SIGTERM, signal.SIGUSR2)
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")  # submitit's own variable
    assert watched_signals() == (signal.SIGTERM, signal.SIGUSR1)
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "NOPE")
    assert time_limit_signal() == signal.SIGUSR2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2], ids=["TERM", "USR2"])
def test_signal_watch_records_and_chains_to_a_framework_handler(signum, signal_handlers):
    watch = SignalWatch()
    assert set(watch.watched) == {signal.SIGTERM, signal.SIGUSR2}
    signal.raise_signal(signum)  # recorded, not fatal
    assert watch.received == [signum] and watch.stopping_signal() == signum
    watch.restore()
    assert signal.getsignal(signum) is signal.SIG_DFL

    calls = []
    signal.signal(signum, lambda s, _frame: calls.append(s))  # a framework's
    watch = SignalWatch()
    signal.raise_signal(signum)
    assert watch.received == [signum] and watch.stopping_signal() is None
    assert calls == []  # the framework hears of it only after the checkpoint
    watch.pass_on()
    assert calls == [signum] and watch.received == []
    watch.restore()
    signal.raise_signal(signum)
    assert calls == [signum] * 2  # its own handler is back

    signal.signal(signum, signal.SIG_IGN)
    watch = SignalWatch()  # an ignored signal stays ignored
    assert signum not in watch.watched and signal.getsignal(signum) is signal.SIG_IGN
    watch.restore()
    assert signal.getsignal(signum) is signal.SIG_IGN


def test_signal_watch_outside_the_main_thread_watches_nothing(signal_handlers):
    watches = []
    thread = threading.Thread(target=lambda: watches.append(SignalWatch()))
    thread.start()
    thread.join()
    assert watches[0].watched == ()
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL


def test_usr2_under_a_launcher_checkpoints_at_the_step_then_calls_its_handler(
    tmp_path, signal_handlers, capsys
):
    calls = []

    def launcher(signum, _frame):  # as submitit's: it requeues the job and exits
        calls.append((signum, _saved_steps(tmp_path)))
        raise SystemExit(144)

    signal.signal(signal.SIGUSR2, launcher)
    checkpointer = _checkpointer(tmp_path)
    with pytest.raises(SystemExit), checkpointer:
        _end_of_step(checkpointer, 2900)  # an epoch's end
        signal.raise_signal(signal.SIGUSR2)  # during step 2996
        assert calls == []
        _end_of_step(checkpointer, 2996)
    assert calls == [(signal.SIGUSR2, [2900, 2996])]  # the checkpoint came first
    assert signal.getsignal(signal.SIGUSR2) is launcher  # put back on the way out
    err = capsys.readouterr().err
    assert "SIGUSR2 at environment step 2996" in err and "step_000002996.ckpt" in err


def test_sigterm_under_a_launcher_checkpoints_and_the_run_goes_on(tmp_path, signal_handlers):
    calls = []
    signal.signal(signal.SIGTERM, lambda s, _frame: calls.append(s))  # submitit's logs it
    checkpointer = _checkpointer(tmp_path)
    with checkpointer:
        signal.raise_signal(signal.SIGTERM)
        _end_of_step(checkpointer, 150)
        _end_of_step(checkpointer, 151)
        _end_of_step(checkpointer, 200)
    assert calls == [signal.SIGTERM]
    assert _saved_steps(tmp_path) == [150, 200]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2], ids=["TERM", "USR2"])
def test_a_signal_in_a_plain_run_checkpoints_then_stops_it(tmp_path, signum, signal_handlers):
    checkpointer = _checkpointer(tmp_path)
    with checkpointer:
        signal.raise_signal(signum)
        with pytest.raises(RunInterrupted) as err:
            _end_of_step(checkpointer, 150)
    assert err.value.signum == signum
    assert f"{signal.Signals(signum).name} at environment step 150" in str(err.value)
    # what happened, not the command line (Python callers continue with train's work_dir)
    assert "hydra.run.dir" not in str(err.value) and err.value.run_dir == tmp_path
    assert _saved_steps(tmp_path) == [150]
    assert signal.getsignal(signum) is signal.SIG_DFL
