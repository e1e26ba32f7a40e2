"""What a checkpoint of ``algorithm=bound`` holds, and how each mbrl object gets it back.

mbrl's own ``save`` methods keep weights (and the replay buffer's transitions) but not
what continuing a run needs: optimizer moments, the entropy temperature, the buffers'
write positions and random generators, the trainer's counters and the CSV logs. The
functions here read that state from mbrl's objects into plain dicts of tensors, arrays
and numbers, and write it back into freshly built objects of the same configuration.
Files are :mod:`mbrl_bound_plugin.checkpoint`'s business.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import mbrl.util
import numpy as np
import torch
from mbrl.third_party.pytorch_sac_pranz24.sac import SAC
from mbrl.util.logger import AverageMeter

# ----------------------------------------------------------------- replay buffers


def buffer_state(buffer: mbrl.util.ReplayBuffer) -> dict[str, Any]:
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


def restore_buffer(buffer: mbrl.util.ReplayBuffer, state: Mapping[str, Any]) -> None:
    """Puts the transitions, position and rng of :func:`buffer_state` into ``buffer``.

    With the same capacity the rows land at the same indices (so sampling continues
    exactly). With another capacity (``overrides.num_steps`` changed before resuming)
    they are added oldest first, and the newest ``capacity`` rows are kept.
    """
    if buffer.num_stored:
        raise ValueError("restore_buffer needs an empty replay buffer")
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


# ------------------------------------------------------------------------- SAC

_SAC_MODULES = ("policy", "critic", "critic_target", "policy_optim", "critic_optim")


def sac_state(sac: SAC) -> dict[str, Any]:
    """Networks, target network, optimizers and entropy temperature of mbrl's SAC."""
    state = {name: getattr(sac, name).state_dict() for name in _SAC_MODULES}
    state["alpha"] = sac.alpha.detach().clone() if torch.is_tensor(sac.alpha) else sac.alpha
    if sac.automatic_entropy_tuning:
        state["log_alpha"] = sac.log_alpha.detach().clone()
        state["alpha_optim"] = sac.alpha_optim.state_dict()
    return state


def restore_sac(sac: SAC, state: Mapping[str, Any]) -> None:
    """Loads :func:`sac_state` into a SAC built with the same configuration."""
    for name in _SAC_MODULES:
        getattr(sac, name).load_state_dict(state[name])
    alpha = state["alpha"]
    sac.alpha = alpha.to(sac.device) if torch.is_tensor(alpha) else alpha
    if sac.automatic_entropy_tuning:
        with torch.no_grad():
            sac.log_alpha.copy_(state["log_alpha"])
        sac.alpha_optim.load_state_dict(state["alpha_optim"])


# ---------------------------------------------------------------------- logger


def logger_state(logger: mbrl.util.Logger) -> dict[str, Any]:
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


def restore_logger(logger: mbrl.util.Logger, state: Mapping[str, Any]) -> None:
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
            header = next(csv.reader(io.StringIO(saved["csv"])))
            group._csv_writer = csv.DictWriter(group._csv_file, fieldnames=header, restval=0.0)
        logger._group_steps[name] = saved["steps"]
        group._meters.clear()
        for key, (total, count) in saved["meters"].items():
            meter = AverageMeter()
            meter._sum, meter._count = total, count
            group._meters[key] = meter


# ------------------------------------------------------------------------ RNGs


def rng_state(
    numpy_generators: Mapping[str, np.random.Generator],
    torch_generators: Mapping[str, torch.Generator],
    envs: Mapping[str, gym.Env],
) -> dict[str, Any]:
    """Every random stream a run draws from: its own generators, the envs' and the globals."""
    state: dict[str, Any] = {
        "numpy": {k: g.bit_generator.state for k, g in numpy_generators.items()},
        "torch": {k: g.get_state() for k, g in torch_generators.items()},
        "env": {
            k: (
                env.unwrapped.np_random.bit_generator.state,
                env.action_space.np_random.bit_generator.state,
            )
            for k, env in envs.items()
        },
        "torch_global": torch.get_rng_state(),
        "numpy_global": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(
    state: Mapping[str, Any],
    numpy_generators: Mapping[str, np.random.Generator],
    torch_generators: Mapping[str, torch.Generator],
    envs: Mapping[str, gym.Env],
) -> None:
    """Sets every random stream of :func:`rng_state` back."""
    for k, g in numpy_generators.items():
        g.bit_generator.state = state["numpy"][k]
    for k, g in torch_generators.items():
        g.set_state(state["torch"][k])
    for k, env in envs.items():
        env_state, space_state = state["env"][k]
        env.unwrapped.np_random.bit_generator.state = env_state
        env.action_space.np_random.bit_generator.state = space_state
    torch.set_rng_state(state["torch_global"])
    np.random.set_state(state["numpy_global"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
