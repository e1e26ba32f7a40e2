"""Checkpoint files: one self-checking file per checkpoint, written atomically.

A checkpoint is ``<run dir>/checkpoints/step_<env steps>.ckpt``::

    MBRL-BOUND-CHECKPOINT 4\\n          magic line and format version
    <payload length> <sha256 hex>\\n    what the payload must be
    <payload>                          torch.save of the state dict, as plain data

Writing goes to ``<name>.tmp`` beside the target, is flushed and fsync'ed, then renamed
over the target (``os.replace``, atomic on POSIX), so a kill at any point leaves either
the old set of checkpoints or the new one, never a partial ``.ckpt``. Reading checks the
magic line, the length and the digest, then unpickles with
``torch.load(weights_only=True)``: a truncated or altered file is refused instead of
half-loaded, and a file holding anything but tensors and plain data (a pickled callable
planted in a shared run directory) is refused without running it. Numpy arrays travel as
tensors (:mod:`mbrl_bound_plugin.util.plain_data`).

The payload is ``{"meta": ..., "run": <the run's state dict>}``. This module knows state
dicts only, never the run: the training loop hands :class:`Checkpointer` the run's
``state_dict()`` to write and loads the one :meth:`Checkpointer.restore` returns. It
knows files, which checkpoint a run may continue from (:func:`find_resume_checkpoint`,
:func:`check_resumable`), when a signal asks for one (:class:`SignalWatch`: SIGTERM, and
the signal that submitit and SLURM's ``--signal`` send ahead of a time limit or a
preemption, USR2 by default), and puts them together in :class:`Checkpointer`, the one
object the training loop talks to.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import pathlib
import pickle
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any

import gymnasium as gym
import omegaconf
import torch
import tqdm

from mbrl_bound_plugin.errors import (
    PROG,
    CheckpointReadError,
    CheckpointWriteError,
    RunInterrupted,
    UsageError,
    first_line,
)
from mbrl_bound_plugin.util.plain_data import from_plain, to_plain

MAGIC = b"MBRL-BOUND-CHECKPOINT"
# 2: the payload is {"meta", "run": the run's state dict}; 3: calibrated bound; 4: tensors
# and plain data only, read with torch.load(weights_only=True)
FORMAT_VERSION = 4
_UNSAFE_GLOBAL = re.compile(r"GLOBAL (\S+)")
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d+)\.ckpt$")


def checkpoint_dir(work_dir: str | os.PathLike) -> pathlib.Path:
    """Where a run keeps its checkpoints: ``<work_dir>/checkpoints``."""
    return pathlib.Path(work_dir) / CHECKPOINT_DIR


def checkpoint_path(directory: pathlib.Path, env_steps: int) -> pathlib.Path:
    """``directory/step_<env_steps, 9 digits>.ckpt``."""
    return directory / f"step_{env_steps:09d}.ckpt"


def list_checkpoints(directory: pathlib.Path) -> list[pathlib.Path]:
    """The ``.ckpt`` files of ``directory``, oldest (fewest steps) first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: pathlib.Path) -> pathlib.Path | None:
    """The checkpoint with the most environment steps, or ``None``."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def _write_file(path: pathlib.Path, header: bytes, payload: bytes) -> None:
    with open(path, "wb") as f:
        f.write(header)
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(directory: pathlib.Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    directory: pathlib.Path, env_steps: int, state: dict[str, Any], keep: int = 1
) -> pathlib.Path:
    """Writes ``state`` as ``step_<env_steps>.ckpt`` atomically; keeps the newest ``keep``.

    Args:
        directory: the checkpoint directory (created if missing).
        env_steps: the environment steps the state has taken (names the file).
        state: nested dicts, lists and tuples of tensors, numpy arrays and numbers,
            ``str``, ``int``, ``float``, ``bool`` and ``None`` (:func:`to_plain`).
        keep: how many checkpoints to keep (the oldest beyond it are deleted, only
            after the new one is in place).

    Returns:
        The path of the new checkpoint.

    Raises:
        CheckpointWriteError: the file could not be written; the checkpoints that
            were there before are untouched and the partial file is removed.
        TypeError: ``state`` holds an object of another type (it could not be loaded).
    """
    target = checkpoint_path(directory, env_steps)
    tmp = target.with_name(target.name + ".tmp")
    buffer = io.BytesIO()
    torch.save(to_plain(state), buffer)
    payload = buffer.getbuffer()
    digest = hashlib.sha256(payload).hexdigest()
    header = MAGIC + b" %d\n%d %s\n" % (FORMAT_VERSION, len(payload), digest.encode())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_file(tmp, header, payload)
        os.replace(tmp, target)
        _fsync_dir(directory)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        reason = "the disk is full" if e.errno == errno.ENOSPC else e.strerror or str(e)
        previous = latest_checkpoint(directory)
        kept = f"; {previous} is intact" if previous is not None else ""
        raise CheckpointWriteError(f"could not write checkpoint {target}: {reason}{kept}") from e
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    for stale in directory.glob("*.ckpt.tmp"):  # left by a run killed while writing
        stale.unlink(missing_ok=True)
    return target


def load_checkpoint(path: pathlib.Path) -> dict[str, Any]:
    """Reads a checkpoint written by :func:`save_checkpoint`, checking it first.

    Args:
        path: the ``.ckpt`` file.

    Returns:
        The state dict, numpy arrays and numbers back as they were saved.

    Raises:
        CheckpointReadError: (one line naming the file) the file cannot be read, is not
            a checkpoint, was written by another mbrl-bound version, is truncated, its
            content does not match its digest, or it holds anything but tensors and
            plain data (nothing in it is run).
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointReadError(f"cannot read checkpoint {path}: {e.strerror or e}") from e
    first, _, rest = data.partition(b"\n")
    second, _, payload = rest.partition(b"\n")
    if not first.startswith(MAGIC + b" "):
        raise CheckpointReadError(f"{path} is not an mbrl-bound checkpoint")
    _check_version(path, first[len(MAGIC) + 1 :].decode(errors="replace"))
    try:
        length_text, digest = second.decode().split(" ")
        length = int(length_text)
    except ValueError:
        raise CheckpointReadError(f"checkpoint {path} is corrupt (bad header)") from None
    if len(payload) != length:
        raise CheckpointReadError(
            f"checkpoint {path} is truncated ({len(payload)} of {length} payload bytes)"
        )
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointReadError(
            f"checkpoint {path} is corrupt (its content does not match its digest)"
        )
    # The digest rules out accidents, not tampering; weights_only rules out running code.
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = _UNSAFE_GLOBAL.search(str(e))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointReadError(
            f"checkpoint {path} holds more than tensors and plain data{what}; it was not "
            "written by mbrl-bound and is not loaded (nothing in it was run)"
        ) from None
    except Exception as e:  # (a payload that is no torch file: its digest matched)
        raise CheckpointReadError(f"checkpoint {path} cannot be read: {first_line(e)}") from None
    return from_plain(state)


def _check_version(path: pathlib.Path, version: str) -> None:
    """Refuses a checkpoint of another format version, in one line saying what to do."""
    if version == str(FORMAT_VERSION):
        return
    if not version.isdigit():
        raise CheckpointReadError(f"checkpoint {path} is corrupt (bad format version)")
    if int(version) < FORMAT_VERSION:
        raise CheckpointReadError(
            f"checkpoint {path} was written by an older mbrl-bound (format {version}; this one "
            f"reads format {FORMAT_VERSION}) and cannot be resumed: start a new run in another "
            "directory, or continue this one with the mbrl-bound version that wrote it"
        )
    raise CheckpointReadError(
        f"checkpoint {path} has format {version}, written by a newer mbrl-bound (this one "
        f"reads format {FORMAT_VERSION}); continue it with that version"
    )


# ------------------------------------------------- which checkpoint a run continues


def _typed(value: Any) -> str:
    """A setting's value as written in the config (``true``, ``null``, ``'text'``, ``3``)."""
    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    return repr(value)


def check_resume(resume: Any) -> None:
    """Refuses a ``resume`` other than ``true``, ``false`` or ``auto``.

    The one check of ``resume``'s value: the configuration's checks make it before a run
    starts, :func:`find_resume_checkpoint` for callers of ``train``.

    Raises:
        UsageError: ``resume=VALUE: use true, false or auto``.
    """
    if not (isinstance(resume, bool) or resume == "auto"):
        raise UsageError(f"resume={_typed(resume)}: use true, false or auto")


def checkpoint_settings(cfg: omegaconf.DictConfig) -> tuple[int, int]:
    """``checkpoint.keep`` and ``checkpoint.every_epochs`` (both default to 1), checked.

    The one check of the ``checkpoint`` settings: the configuration's checks make it
    before a run starts, :class:`Checkpointer` for callers of ``train``.

    Returns:
        How many checkpoints to keep, and every how many epochs one is written.

    Raises:
        UsageError: ``checkpoint.KEY=VALUE: use an integer >= 1``.
    """
    section = cfg.get("checkpoint", None) or {}
    values = []
    for key in ("keep", "every_epochs"):
        value = section.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"checkpoint.{key}={_typed(value)}: use an integer >= 1")
        values.append(value)
    return values[0], values[1]


def find_resume_checkpoint(resume: Any, directory: pathlib.Path) -> pathlib.Path | None:
    """The checkpoint a run continues from, or ``None`` for a fresh start.

    Args:
        resume: ``cfg.resume``: ``false`` (fresh start), ``true`` (continue; a
            checkpoint must exist) or ``auto`` (continue if there is one, as a requeued
            SLURM job wants).
        directory: the run's checkpoint directory.

    Raises:
        UsageError: an invalid ``resume``; ``resume=true`` without a checkpoint; or
            ``resume=false`` where an earlier run left checkpoints (starting afresh
            would overwrite its logs and checkpoints).
    """
    check_resume(resume)
    found = latest_checkpoint(directory)
    if resume is True and found is None:
        raise UsageError(
            f"resume=true but {directory} holds no checkpoint; give the run's own directory "
            "(hydra.run.dir=... on the command line, train's work_dir from Python), or drop "
            "resume=true to start afresh"
        )
    if resume is False and found is not None:
        raise UsageError(
            f"{found} is a checkpoint of an earlier run in this directory; pass resume=true "
            "to continue it, or another run directory (hydra.run.dir=... on the command line, "
            "train's work_dir from Python) to start afresh"
        )
    return found


def config_dict(cfg: omegaconf.DictConfig) -> dict[str, Any]:
    """The config as plain data, for the checkpoint and :func:`changed_settings`.

    Sections that do not resolve (e.g. the PETS-only ``action_optimizer`` under MBPO
    overrides) are kept unresolved.
    """
    out: dict[str, Any] = {}
    for key in cfg:
        node = cfg._get_node(key)
        if not isinstance(node, omegaconf.DictConfig | omegaconf.ListConfig):
            out[key] = cfg.get(key)
            continue
        try:
            out[key] = omegaconf.OmegaConf.to_container(node, resolve=True)
        except omegaconf.errors.OmegaConfBaseException:
            out[key] = omegaconf.OmegaConf.to_container(node, resolve=False)
    return out


def run_identity(cfg: omegaconf.DictConfig, env: gym.Env) -> dict[str, Any]:
    """What a checkpoint must share with the run that loads it."""
    return {
        "obs_shape": list(env.observation_space.shape),
        "act_shape": list(env.action_space.shape),
        "algorithm": str(cfg.algorithm.name),
        "env": env.spec.id if env.spec is not None else type(env.unwrapped).__name__,
    }


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat |= _flatten(value, f"{prefix}{key}.")
        return flat
    return {prefix[:-1]: node}


def changed_settings(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every setting that differs (``resume`` aside)."""
    old, new = _flatten(saved), _flatten(current)
    keys = sorted((old.keys() | new.keys()) - {"resume"})
    return [f"{k}: {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k)]


def check_resumable(saved: Mapping[str, Any], path: pathlib.Path, identity: dict) -> None:
    """Refuses a checkpoint whose :func:`run_identity` differs from this run's.

    Raises:
        CheckpointReadError: naming the file and the first differing item.
    """
    meta = saved.get("meta") if isinstance(saved, Mapping) else None
    if not isinstance(meta, Mapping) or "identity" not in meta or "run" not in saved:
        raise CheckpointReadError(
            f"checkpoint {path} has no run description; it was not written by train"
        )
    for key, value in identity.items():
        if meta["identity"].get(key) != value:
            raise CheckpointReadError(
                f"checkpoint {path} was written with {key}={meta['identity'].get(key)}, "
                f"but this run has {key}={value}"
            )


#: submitit's variable naming its time-limit/preemption signal (``USR2`` when unset).
PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"

_Handler = Callable[[int, FrameType | None], Any] | int | None


def time_limit_signal() -> signal.Signals:
    """The signal sent ahead of a time limit or a preemption: submitit's, USR2 by default.

    submitit asks SLURM for it (``--signal=USR2@signal_delay_s``), its local executor
    sends it ``signal_delay_s`` before ``timeout_min``, and its handler requeues the job.
    ``SUBMITIT_PREEMPT_SIGNAL`` (e.g. ``USR1``) changes it there, and so here.
    """
    name = os.environ.get(PREEMPT_SIGNAL_ENV, "USR2")
    found = getattr(signal, f"SIG{name}", None)
    return found if isinstance(found, signal.Signals) else signal.SIGUSR2


def watched_signals() -> tuple[signal.Signals, ...]:
    """The signals a run checkpoints on: SIGTERM and :func:`time_limit_signal`."""
    return tuple(dict.fromkeys((signal.SIGTERM, time_limit_signal())))


class SignalWatch:
    """Turns a stop signal into a checkpoint at the end of the current environment step.

    Watches :func:`watched_signals` (SIGTERM, and USR2, the signal submitit and SLURM's
    ``--signal`` send ahead of a time limit or a preemption). The handler installed here
    only records the signal; :meth:`Checkpointer.after_step` writes the checkpoint at the
    end of the step, then acts as the handler that was there before would have:

    - Python's default (``SIG_DFL``, a plain run): the run stops with
      :class:`RunInterrupted` (:meth:`stopping_signal`);
    - a framework's handler (a callable): it is called with the signal (:meth:`pass_on`)
      and decides what happens. submitit's logs and ignores SIGTERM, and on USR2 requeues
      the job and exits, so the requeued job continues from this checkpoint;
    - ``SIG_IGN``, or a handler not set from Python: not watched, left as it is.

    Installed in the main thread only (Python handles signals there); elsewhere it
    watches nothing.

    Args:
        signals: the signals to watch; ``None``: :func:`watched_signals`.
    """

    def __init__(self, signals: Sequence[int] | None = None) -> None:
        self.received: list[int] = []
        self._previous: dict[int, _Handler] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in watched_signals() if signals is None else signals:
            previous = signal.getsignal(signum)
            if previous in (signal.SIG_IGN, None):  # (None: could not be put back)
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._record)

    @property
    def watched(self) -> tuple[int, ...]:
        """The signals whose handler this watch replaced."""
        return tuple(self._previous)

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)

    def stopping_signal(self) -> int | None:
        """The first recorded signal whose previous handler was ``SIG_DFL`` (it ends the run)."""
        return next((s for s in self.received if self._previous.get(s) is signal.SIG_DFL), None)

    def pass_on(self) -> None:
        """Hands the recorded signals, in order, to the previous handlers; forgets them.

        A handler may not return: submitit's USR2 handler exits the process (or raises
        ``UncompletedJobError`` once the job has timed out ``max_num_timeout`` times).
        """
        signals, self.received[:] = list(self.received), []
        for signum in signals:
            handler = self._previous.get(signum)
            if callable(handler):
                handler(signum, None)

    def restore(self) -> None:
        """Puts the previous handlers back."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


class Checkpointer:
    """When and where a run saves itself, and the state it continues from.

    Made before the run's components, so that every setting is checked once and a
    checkpoint that cannot be continued is refused before anything is written. It knows
    state dicts, never the run: the caller loads :meth:`restore`'s state (inside
    :meth:`loading`) and hands over the run's ``state_dict()`` when :meth:`due` says a
    checkpoint is due. Use it as a context manager around the training loop: inside,
    SIGTERM and the time-limit signal are watched (:class:`SignalWatch`) and
    :meth:`after_step` acts on them::

        state = checkpointer.restore()
        if state is None:
            ...  # a fresh start
        else:
            with checkpointer.loading():
                run.load_state_dict(state)
        with checkpointer:
            while ...:  # one environment step
                if checkpointer.due(env_steps):
                    checkpointer.after_step(run.state_dict(), env_steps)

    Args:
        work_dir: the run directory; checkpoints go to ``work_dir/checkpoints``.
        cfg: the run's configuration (``checkpoint.keep``, ``checkpoint.every_epochs``,
            ``resume`` and ``overrides.epoch_length`` are read).
        env: the run's environment (its shapes and id identify the run).
        silent: if ``True``, nothing is printed (resuming, a signal handed on).

    Raises:
        UsageError: invalid settings; ``resume`` rules (:func:`find_resume_checkpoint`).
        CheckpointReadError: a damaged checkpoint, one of another mbrl-bound version
            (:func:`load_checkpoint`), or one of another run (:func:`check_resumable`).
    """

    def __init__(
        self,
        work_dir: str | os.PathLike,
        cfg: omegaconf.DictConfig,
        env: gym.Env,
        silent: bool = False,
    ):
        self.keep, every_epochs = checkpoint_settings(cfg)
        self.every_steps = every_epochs * cfg.overrides.epoch_length
        self.directory = checkpoint_dir(work_dir)
        self.identity = run_identity(cfg, env)
        self.config = config_dict(cfg)  # (the config does not change during a run)
        self.silent = silent
        self.resume_path = find_resume_checkpoint(cfg.get("resume", False), self.directory)
        self._saved: dict[str, Any] | None = None
        if self.resume_path is not None:
            self._saved = load_checkpoint(self.resume_path)
            check_resumable(self._saved, self.resume_path, self.identity)
        self._meta: Mapping[str, Any] | None = None
        self._signals: SignalWatch | None = None

    def restore(self) -> dict[str, Any] | None:
        """The run's state dict to continue from, once; ``None`` for a fresh start.

        Load it inside :meth:`loading`, which names the checkpoint if it does not fit.
        """
        if self._saved is None:
            return None
        saved, self._saved = self._saved, None  # (the replay buffer's copy can be large)
        self._meta = saved["meta"]
        return saved["run"]

    @contextlib.contextmanager
    def loading(self) -> Iterator[None]:
        """Around the loading of :meth:`restore`'s state; says it resumed once it has.

        Raises:
            CheckpointReadError: the load raised ``RuntimeError``, ``ValueError`` or
                ``KeyError`` (the checkpoint does not fit the run, e.g. other network
                sizes): one line naming the checkpoint.
        """
        try:
            yield
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointReadError(
                f"checkpoint {self.resume_path} does not fit this run's configuration: "
                f"{first_line(e)}"
            ) from e
        meta = self._meta or {}
        if not self.silent:
            changes = changed_settings(meta.get("config", {}), self.config)
            print(
                f"{PROG}: resuming from {self.resume_path} "
                f"(environment step {meta.get('env_steps')})"
                + (f"; changed settings: {'; '.join(changes)}" if changes else ""),
                file=sys.stderr,
            )

    def save(self, state: dict[str, Any], env_steps: int) -> pathlib.Path:
        """Writes a run's ``state`` as ``step_<env_steps>.ckpt``; keeps the newest ``keep``.

        Args:
            state: the run's ``state_dict()`` (:func:`save_checkpoint` says what it may hold).
            env_steps: the environment steps the run has taken.

        Returns:
            The path of the new checkpoint.
        """
        meta = {"identity": self.identity, "config": self.config, "env_steps": env_steps}
        return save_checkpoint(
            self.directory, env_steps, {"meta": meta, "run": state}, keep=self.keep
        )

    def due(self, env_steps: int) -> bool:
        """Whether a checkpoint is due at the end of this step: a stop signal came, or
        ``env_steps`` completes ``every_epochs`` epochs."""
        watch = self._signals
        return bool(watch is not None and watch.received) or env_steps % self.every_steps == 0

    def after_step(self, state: dict[str, Any], env_steps: int) -> pathlib.Path:
        """At the end of a step where :meth:`due`: writes ``state``, then acts on a signal.

        After a signal's checkpoint, the run stops (a plain run) or the signal goes on to
        the framework's handler (:class:`SignalWatch`), which may end the process.

        Args:
            state: the run's ``state_dict()``.
            env_steps: the environment steps the run has taken.

        Returns:
            The path of the new checkpoint.

        Raises:
            RunInterrupted: after the checkpoint, for a signal that no framework handles.
        """
        path = self.save(state, env_steps)
        watch = self._signals
        if watch is None or not watch.received:
            return path
        stopping = watch.stopping_signal()
        if stopping is not None:
            raise RunInterrupted(stopping, env_steps, path)
        if not self.silent:
            names = "+".join(signal.Signals(s).name for s in dict.fromkeys(watch.received))
            tqdm.tqdm.write(  # (on a line of its own below the progress bar)
                f"{PROG}: {names} at environment step {env_steps}; checkpoint {path} "
                "written, handing the signal to the launcher's handler",
                file=sys.stderr,
            )
        watch.pass_on()
        return path

    def __enter__(self) -> Checkpointer:
        self._signals = SignalWatch()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._signals is not None:
            self._signals.restore()
            self._signals = None
