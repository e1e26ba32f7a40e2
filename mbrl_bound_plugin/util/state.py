"""``state_dict`` / ``load_state_dict`` for the mbrl objects a run owns, and its random streams.

PyTorch's convention, ``obj.state_dict()`` and ``obj.load_state_dict(state)``, is how
every part of a :class:`~mbrl_bound_plugin.algorithms.bound_run.BoundRun` is saved. This
package's own classes have those methods (the discriminator and model are ``nn.Module``; the agent
defines them). mbrl's replay buffer, logger and SAC have none, and mbrl's ``save`` methods
keep weights and transitions but not what continuing a run needs (optimizer moments, the
entropy temperature, the buffers' write positions and generators, the CSV logs), so
:func:`state_dict` and :func:`load_state_dict` here provide them, dispatching on the
object's type. :class:`RandomStreams` does the same for every random generator a run
draws from. Files are :mod:`mbrl_bound_plugin.util.checkpoint`'s business.
"""

from __future__ import annotations

import csv
import functools
import io
import random
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import mbrl.models
import mbrl.util
import numpy as np
import torch
from mbrl.third_party.pytorch_sac_pranz24.sac import SAC
from mbrl.util.logger import AverageMeter, Logger

from mbrl_bound_plugin.util.replay_buffer import ScoredReplayBuffer


@functools.singledispatch
def state_dict(obj: Any) -> dict[str, Any]:
    """What ``obj`` needs to continue where it is (an mbrl object without ``state_dict``).

    Args:
        obj: an mbrl ``ReplayBuffer`` (or this package's ``ScoredReplayBuffer``), ``Logger``,
            pytorch_sac_pranz24 ``SAC`` or ``OneDTransitionRewardModel``.

    Returns:
        Plain data: tensors, arrays, numbers, strings.
    """
    raise TypeError(f"no state_dict for {type(obj).__name__}")


@functools.singledispatch
def load_state_dict(obj: Any, state: Mapping[str, Any]) -> None:
    """Puts :func:`state_dict`'s ``state`` back into a freshly built ``obj`` of the same kind.

    Raises:
        ValueError, RuntimeError or KeyError: the state does not fit ``obj`` (another shape
            or network size).
    """
    raise TypeError(f"no load_state_dict for {type(obj).__name__}")


# ----------------------------------------------------------------- replay buffers


@state_dict.register
def _buffer_state(buffer: mbrl.util.ReplayBuffer) -> dict[str, Any]:
    """The stored transitions of ``buffer`` (not its empty tail), its position and rng."""
    n = buffer.num_stored
    return {
        "capacity": buffer.capacity,
        "cur_idx": buffer.cur_idx,
        "num_stored": n,
        "obs": buffer.obs[:n].copy(),
        "next_obs": buffer.next_obs[:n].copy(),
        "action": buffer.action[:n].copy(),
        "reward": buffer.reward[:n].copy(),
        "terminated": buffer.terminated[:n].copy(),
        "truncated": buffer.truncated[:n].copy(),
        "rng": buffer.rng.bit_generator.state,
    }


def _chronological(state: Mapping[str, Any], key: str) -> np.ndarray:
    data = state[key]
    if state["num_stored"] == state["capacity"]:  # full: the oldest row is at cur_idx
        data = np.roll(data, -state["cur_idx"], axis=0)
    return data


@load_state_dict.register
def _load_buffer(buffer: mbrl.util.ReplayBuffer, state: Mapping[str, Any]) -> None:
    """Puts the transitions, position and rng of a buffer's state into an empty ``buffer``.

    With the same capacity the rows land at the same indices (so sampling continues
    exactly). With another capacity (``overrides.num_steps`` changed before resuming)
    they are added oldest first, and the newest ``capacity`` rows are kept.
    """
    if buffer.num_stored:
        raise ValueError("a replay buffer is loaded only into an empty one")
    if buffer.obs.shape[1:] != state["obs"].shape[1:]:
        raise ValueError(
            f"observation shape {state['obs'].shape[1:]} of the saved buffer does not "
            f"match {buffer.obs.shape[1:]}"
        )
    if buffer.action.shape[1:] != state["action"].shape[1:]:
        raise ValueError(
            f"action shape {state['action'].shape[1:]} of the saved buffer does not "
            f"match {buffer.action.shape[1:]}"
        )
    n = state["num_stored"]
    if buffer.capacity == state["capacity"]:
        for key in ("obs", "next_obs", "action", "reward", "terminated", "truncated"):
            getattr(buffer, key)[:n] = state[key]
        buffer.cur_idx, buffer.num_stored = state["cur_idx"], n
    elif n:
        columns = ("obs", "action", "next_obs", "reward", "terminated", "truncated")
        newest = slice(-buffer.capacity, None)
        buffer.add_batch(*(_chronological(state, key)[newest] for key in columns))
    buffer.rng.bit_generator.state = state["rng"]


@state_dict.register
def _scored_buffer_state(buffer: ScoredReplayBuffer) -> dict[str, Any]:
    """A buffer's state (above), and the logits of its stored rows and which are stale."""
    n = buffer.num_stored
    return {
        **_buffer_state(buffer),
        "logits": buffer.logits[:n].copy(),
        "stale": buffer.stale[:n].copy(),
    }


@load_state_dict.register
def _load_scored_buffer(buffer: ScoredReplayBuffer, state: Mapping[str, Any]) -> None:
    """Puts a buffer's state into an empty ``buffer``, and its rows' logits.

    The saved logits are put back as they were (so a resumed run reads the very numbers
    the uninterrupted one would, not a rescoring that may differ in the last bits); rows
    saved without them (a plain buffer's state) are scored by ``buffer.scorer``, as are
    rows added to a buffer of another capacity.
    """
    _load_buffer(buffer, state)
    if buffer.capacity != state["capacity"]:
        return  # (the rows were added, so scored)
    if "logits" in state:
        buffer.logits[: state["num_stored"]] = state["logits"]
        if "stale" in state:
            buffer.stale[: state["num_stored"]] = state["stale"]
    else:
        buffer.rescore()


# ------------------------------------------------------------------------- SAC

_SAC_MODULES = ("policy", "critic", "critic_target", "policy_optim", "critic_optim")


@state_dict.register
def _sac_state(sac: SAC) -> dict[str, Any]:
    """Networks, target network, optimizers and entropy temperature of mbrl's SAC."""
    state = {name: getattr(sac, name).state_dict() for name in _SAC_MODULES}
    state["alpha"] = sac.alpha.detach().clone() if torch.is_tensor(sac.alpha) else sac.alpha
    if sac.automatic_entropy_tuning:
        state["log_alpha"] = sac.log_alpha.detach().clone()
        state["alpha_optim"] = sac.alpha_optim.state_dict()
    return state


@load_state_dict.register
def _load_sac(sac: SAC, state: Mapping[str, Any]) -> None:
    """Loads a SAC's state into a SAC built with the same configuration."""
    for name in _SAC_MODULES:
        getattr(sac, name).load_state_dict(state[name])
    alpha = state["alpha"]
    sac.alpha = alpha.to(sac.device) if torch.is_tensor(alpha) else alpha
    if sac.automatic_entropy_tuning:
        with torch.no_grad():
            sac.log_alpha.copy_(state["log_alpha"])
        sac.alpha_optim.load_state_dict(state["alpha_optim"])


# ---------------------------------------------------------------------- logger


# (Logger from mbrl.util.logger: util/console.py's quiet_console may stand another class
# in for mbrl.util.Logger while this module is imported)
@state_dict.register
def _logger_state(logger: Logger) -> dict[str, Any]:
    """Per group: the CSV written so far, the row counter and the meters not yet dumped."""
    state = {}
    for name, (group, _frequency, _color) in logger._groups.items():
        path = group._csv_file_path
        state[name] = {
            "csv": path.read_bytes().decode() if path.exists() else "",
            "steps": logger._group_steps[name],
            "meters": {k: (m._sum, m._count) for k, m in group._meters.items()},
        }
    return state


class _ResumedCSVWriter:
    """The CSV writer of a resumed logger group: it continues the saved file.

    A checkpoint written by an older version of this package can lack a column the
    current one logs (a new diagnostic). mbrl's writer would refuse such a row, so at the
    first row with a new column the file is rewritten once with the header mbrl would
    give it (the sorted keys), the earlier rows leaving the new columns empty (not
    measured). Rows with the saved columns only go on under the saved header.
    """

    def __init__(self, group: Any, saved_csv: str):
        self._group = group
        self._saved_csv = saved_csv
        self._header = next(csv.reader(io.StringIO(saved_csv)))

    def writerow(self, data: Mapping[str, Any]) -> None:
        header = self._header
        if not set(data) <= set(header):
            header = sorted(set(header) | set(data))
            file = self._group._csv_file
            file.seek(0)
            file.truncate()
            writer = csv.DictWriter(file, fieldnames=header, restval="")
            writer.writeheader()
            writer.writerows(csv.DictReader(io.StringIO(self._saved_csv)))
        writer = csv.DictWriter(self._group._csv_file, fieldnames=header, restval=0.0)
        self._group._csv_writer = writer
        writer.writerow(data)


@load_state_dict.register
def _load_logger(logger: Logger, state: Mapping[str, Any]) -> None:
    """Rewrites each group's CSV as it was at the checkpoint and continues after it.

    mbrl's ``Logger`` starts every CSV afresh when a group is registered; this puts
    back the rows written up to the checkpoint (rows written after it, by the run that
    was killed, are dropped: the resumed run writes them again), so the files continue
    without a gap or a duplicated row.
    """
    for name, saved in state.items():
        if name not in logger._groups:
            continue
        group = logger._groups[name][0]
        group._csv_file.seek(0)
        group._csv_file.truncate()
        group._csv_file.write(saved["csv"])
        group._csv_file.flush()
        if saved["csv"]:
            group._csv_writer = _ResumedCSVWriter(group, saved["csv"])
        logger._group_steps[name] = saved["steps"]
        group._meters.clear()
        for key, (total, count) in saved["meters"].items():
            meter = AverageMeter()
            meter._sum, meter._count = total, count
            group._meters[key] = meter


# ------------------------------------------------------------------------ model


@state_dict.register
def _model_state(model: mbrl.models.OneDTransitionRewardModel) -> dict[str, Any]:
    """Weights, elite set and input normalizer of mbrl's 1-D transition-reward model.

    (The model's own ``state_dict`` is left as torch's: mbrl's ``ModelTrainer`` copies
    and reloads it to keep the best weights.)
    """
    normalizer = model.input_normalizer
    return {
        "weights": model.state_dict(),
        "elite_models": getattr(model.model, "elite_models", None),
        "normalizer": None if normalizer is None else (normalizer.mean, normalizer.std),
    }


@load_state_dict.register
def _load_model(model: mbrl.models.OneDTransitionRewardModel, state: Mapping[str, Any]) -> None:
    model.load_state_dict(state["weights"])
    if state["elite_models"] is not None:
        model.model.set_elite(state["elite_models"])
    if state["normalizer"] is not None:
        mean, std = state["normalizer"]
        model.input_normalizer.mean = mean.to(model.device)
        model.input_normalizer.std = std.to(model.device)


# ------------------------------------------------------------------------ RNGs


class RandomStreams:
    """Every random stream a run draws from, saved and restored together.

    The run's own numpy and torch generators, the environments' and their action
    spaces' generators, torch's, numpy's and Python's global generators, and CUDA's.

    Args:
        numpy_generators: the run's numpy generators by name.
        torch_generators: the run's torch generators by name.
        envs: the run's environments by name.
    """

    def __init__(
        self,
        numpy_generators: Mapping[str, np.random.Generator],
        torch_generators: Mapping[str, torch.Generator],
        envs: Mapping[str, gym.Env],
    ):
        self.numpy_generators = dict(numpy_generators)
        self.torch_generators = dict(torch_generators)
        self.envs = dict(envs)

    def state_dict(self) -> dict[str, Any]:
        """The state of every stream."""
        state: dict[str, Any] = {
            "numpy": {k: g.bit_generator.state for k, g in self.numpy_generators.items()},
            "torch": {k: g.get_state() for k, g in self.torch_generators.items()},
            "env": {
                k: (
                    env.unwrapped.np_random.bit_generator.state,
                    env.action_space.np_random.bit_generator.state,
                )
                for k, env in self.envs.items()
            },
            "torch_global": torch.get_rng_state(),
            "numpy_global": np.random.get_state(),
            "python": random.getstate(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Sets every stream back to :meth:`state_dict`'s ``state``."""
        for k, g in self.numpy_generators.items():
            g.bit_generator.state = state["numpy"][k]
        for k, g in self.torch_generators.items():
            g.set_state(state["torch"][k])
        for k, env in self.envs.items():
            env_state, space_state = state["env"][k]
            env.unwrapped.np_random.bit_generator.state = env_state
            env.action_space.np_random.bit_generator.state = space_state
        torch.set_rng_state(state["torch_global"])
        np.random.set_state(state["numpy_global"])
        random.setstate(state["python"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
