"""Checkpoint files: one self-checking file per checkpoint, written atomically.

A checkpoint is ``<run dir>/checkpoints/step_<env steps>.ckpt``::

    MBRL-BOUND-CHECKPOINT 1\\n          magic line and format version
    <payload length> <sha256 hex>\\n    what the payload must be
    <payload>                          torch.save of the state dict

Writing goes to ``<name>.tmp`` beside the target, is flushed and fsync'ed, then renamed
over the target (``os.replace``, atomic on POSIX), so a kill at any point leaves either
the old set of checkpoints or the new one, never a partial ``.ckpt``. Reading checks the
magic line, the length and the digest before unpickling, so a truncated or altered file
is refused instead of half-loaded. The payload is ``{"meta": ..., "run": run.state_dict()}``:
what a run holds is
:class:`~mbrl_bound_plugin.algorithms.bound_run.BoundRun`'s business. This module knows files, which checkpoint a run may continue from (:func:`find_resume_checkpoint`,
:func:`check_resumable`), when a signal asks for one (:class:`SignalWatch`: SIGTERM, and
the signal that submitit and SLURM's ``--signal`` send ahead of a time limit or a
preemption, USR2 by default), and puts them together in :class:`Checkpointer`, the one
object the training loop talks to.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pathlib
import re
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import omegaconf
import torch
import tqdm

from mbrl_bound_plugin.errors import (
    PROG,
    CheckpointWriteError,
    RunInterrupted,
    UsageError,
    first_line,
)

if TYPE_CHECKING:
    from mbrl_bound_plugin.algorithms.bound_run import BoundRun

MAGIC = b"MBRL-BOUND-CHECKPOINT"
FORMAT_VERSION = 3  # 2: the payload is {"meta", "run": BoundRun.state_dict()}; 3: calibrated bound
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
        state: anything ``torch.save`` can write.
        keep: how many checkpoints to keep (the oldest beyond it are deleted, only
            after the new one is in place).

    Returns:
        The path of the new checkpoint.

    Raises:
        CheckpointWriteError: the file could not be written; the checkpoints that
            were there before are untouched and the partial file is removed.
    """
    target = checkpoint_path(directory, env_steps)
    tmp = target.with_name(target.name + ".tmp")
    buffer = io.BytesIO()
    torch.save(state, buffer)
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
        The state dict.

    Raises:
        UsageError: the file is not a checkpoint, is of another format version, is
            truncated, or its content does not match its digest.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read checkpoint {path}: {e.strerror or e}") from e
    first, _, rest = data.partition(b"\n")
    second, _, payload = rest.partition(b"\n")
    if not first.startswith(MAGIC + b" "):
        raise UsageError(f"{path} is not an mbrl-bound checkpoint")
    if first != MAGIC + b" %d" % FORMAT_VERSION:
        version = first[len(MAGIC) + 1 :].decode(errors="replace")
        raise UsageError(
            f"checkpoint {path} has format {version}; this mbrl-bound reads format {FORMAT_VERSION}"
        )
    try:
        length_text, digest = second.decode().split(" ")
        length = int(length_text)
    except ValueError:
        raise UsageError(f"checkpoint {path} is corrupt (bad header)") from None
    if len(payload) != length:
        raise UsageError(
            f"checkpoint {path} is truncated ({len(payload)} of {length} payload bytes)"
        )
    if hashlib.sha256(payload).hexdigest() != digest:
        raise UsageError(f"checkpoint {path} is corrupt (its content does not match its digest)")
    # The digest rules out accidents, not tampering: like any torch pickle, load only
    # checkpoints that your own runs wrote.
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)


# ------------------------------------------------- which checkpoint a run continues


RESUME_CHOICES = (False, True, "auto")


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
    if resume not in RESUME_CHOICES or isinstance(resume, int) and not isinstance(resume, bool):
        raise UsageError(f"resume={resume!r}; use true, false or auto")
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
        UsageError: naming the file and the first differing item.
    """
    meta = saved.get("meta") if isinstance(saved, Mapping) else None
    if not isinstance(meta, Mapping) or "identity" not in meta:
        raise UsageError(f"checkpoint {path} has no run description; it was not written by train")
    for key, value in identity.items():
        if meta["identity"].get(key) != value:
            raise UsageError(
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


def _positive_int(section: Any, key: str) -> int:
    value = section.get(key, 1)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"checkpoint.{key}={value!r} must be an integer >= 1")
    return value


class Checkpointer:
    """When and where a run saves itself, and the checkpoint it continues from.

    Made before the run's components, so that every setting is checked once and a
    checkpoint that cannot be continued is refused before anything is written. Use it as
    a context manager around the training loop: inside, SIGTERM and the time-limit signal
    are watched (:class:`SignalWatch`) and :meth:`after_step` acts on them.

    Args:
        work_dir: the run directory; checkpoints go to ``work_dir/checkpoints``.
        cfg: the run's configuration (``checkpoint.keep``, ``checkpoint.every_epochs``,
            ``resume`` and ``overrides.epoch_length`` are read).
        env: the run's environment (its shapes and id identify the run).

    Raises:
        UsageError: invalid settings; ``resume`` rules (:func:`find_resume_checkpoint`);
            a damaged checkpoint or one of another run (:func:`check_resumable`).
    """

    def __init__(self, work_dir: str | os.PathLike, cfg: omegaconf.DictConfig, env: gym.Env):
        settings = cfg.get("checkpoint", None) or {}
        self.keep = _positive_int(settings, "keep")
        self.every_steps = _positive_int(settings, "every_epochs") * cfg.overrides.epoch_length
        self.directory = checkpoint_dir(work_dir)
        self.identity = run_identity(cfg, env)
        self.config = config_dict(cfg)  # (the config does not change during a run)
        self.resume_path = find_resume_checkpoint(cfg.get("resume", False), self.directory)
        self._saved: dict[str, Any] | None = None
        if self.resume_path is not None:
            self._saved = load_checkpoint(self.resume_path)
            check_resumable(self._saved, self.resume_path, self.identity)
        self._signals: SignalWatch | None = None

    def restore(self, run: BoundRun) -> bool:
        """Loads the checkpoint to continue from into ``run``, once.

        Args:
            run: a freshly built run of the same configuration.

        Returns:
            ``True`` if a checkpoint was loaded, ``False`` for a fresh start.

        Raises:
            UsageError: the checkpoint does not fit the run (e.g. other network sizes).
        """
        if self._saved is None:
            return False
        saved, self._saved = self._saved, None  # (the replay buffer's copy can be large)
        try:
            run.load_state_dict(saved["run"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise UsageError(
                f"checkpoint {self.resume_path} does not fit this run's configuration: "
                f"{first_line(e)}"
            ) from e
        if not run.silent:
            changes = changed_settings(saved["meta"]["config"], self.config)
            print(
                f"{PROG}: resuming from {self.resume_path} (environment step {run.env_steps})"
                + (f"; changed settings: {'; '.join(changes)}" if changes else ""),
                file=sys.stderr,
            )
        return True

    def save(self, run: BoundRun) -> pathlib.Path:
        """Writes ``run.state_dict()`` as ``step_<env steps>.ckpt``; keeps the newest ``keep``."""
        state = {"meta": {"identity": self.identity, "config": self.config}}
        state["run"] = run.state_dict()
        return save_checkpoint(self.directory, run.env_steps, state, keep=self.keep)

    def after_step(self, run: BoundRun) -> None:
        """At the end of an environment step: a checkpoint on a signal, and every ``every_epochs``.

        After a signal's checkpoint, the run stops (a plain run) or the signal goes on to
        the framework's handler (:class:`SignalWatch`), which may end the process.

        Raises:
            RunInterrupted: after the checkpoint, for a signal that no framework handles.
        """
        watch = self._signals
        if watch is not None and watch.received:
            path = self.save(run)
            stopping = watch.stopping_signal()
            if stopping is not None:
                raise RunInterrupted(stopping, run.env_steps, path)
            if not run.silent:
                names = "+".join(signal.Signals(s).name for s in dict.fromkeys(watch.received))
                tqdm.tqdm.write(  # (on a line of its own below the progress bar)
                    f"{PROG}: {names} at environment step {run.env_steps}; checkpoint {path} "
                    "written, handing the signal to the launcher's handler",
                    file=sys.stderr,
                )
            watch.pass_on()
        elif run.env_steps % self.every_steps == 0:
            self.save(run)

    def __enter__(self) -> Checkpointer:
        self._signals = SignalWatch()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._signals is not None:
            self._signals.restore()
            self._signals = None
