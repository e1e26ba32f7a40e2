"""The torch device a run uses: ``device: auto`` resolved, and a device that is not there refused.

Each entry point resolves the configured device: the ``mbrl-bound`` command (before
Hydra starts, or in the job's own process when a launcher runs it elsewhere) and
:func:`mbrl_bound_plugin.algorithms.bound.train` for Python callers. A process resolves
each device once: what it resolved (``auto`` and the device it became) is remembered, so
``train`` called by the command finds its device resolved.
"""

from __future__ import annotations

from typing import Any

import torch

from mbrl_bound_plugin.errors import UsageError

# device as configured -> the torch device it resolved to, in this process
_resolved: dict[str, str] = {}


def resolve_device(device: Any) -> str:
    """Turns ``auto`` into ``cuda:0`` or ``cpu``; refuses a device that is not there.

    Args:
        device: the configured device (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Returns:
        A torch device string.

    Raises:
        UsageError: an invalid device string, CUDA requested on a machine without it,
            or a CUDA device index the machine does not have.
    """
    if isinstance(device, str) and device in _resolved:
        return _resolved[device]
    resolved = _resolve(device)
    _resolved[device] = _resolved[resolved] = resolved
    return resolved


def _resolve(device: Any) -> str:
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    try:
        if not isinstance(device, str):
            raise TypeError(device)
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise UsageError(f"invalid device={device!r}; use auto, cpu or cuda:N") from e
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"device={device} but CUDA is not available here; use device=cpu or auto"
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise UsageError(
                f"device={device} but this machine has {count} CUDA device(s), cuda:0 to "
                f"cuda:{count - 1}; use one of them, or auto"
            )
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError(f"device={device} but MPS is not available here; use cpu or auto")
    elif parsed.type != "cpu":
        raise UsageError(f"invalid device={device!r}; use auto, cpu or cuda:N")
    return device
