"""State dicts as tensors and plain data, the only things ``torch.load(weights_only=True)`` reads.

A checkpoint is loaded with torch's restricted unpickler, which rebuilds tensors, ``dict``,
``OrderedDict``, ``list``, ``tuple``, ``str``, ``int`` (of any size: numpy's PCG64 state
is two 128-bit ints), ``float``, ``bool`` and ``None``, and refuses every other type, so
that a planted file cannot run code when it is read. The state of a run also holds
numpy arrays (the replay buffers' columns, numpy's global generator state) and numpy
scalars (numbers numpy computed); :func:`to_plain` turns each into a small dict holding a
tensor of the same bits, and :func:`from_plain` turns it back into the same array or
scalar (same dtype, shape and values), so that what is loaded equals what was saved.

This module imports nothing else of the package.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

# the key of the dict standing for a numpy array or scalar
NUMPY_KEY = "__numpy__"
_PLAIN_LEAVES = (str, int, float, bool, type(None), torch.Tensor)


def _array_to_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor of ``array``'s bits (sharing its memory where torch can)."""
    if not array.flags.c_contiguous:
        array = array.copy(order="C")
    try:
        return torch.from_numpy(array)
    except TypeError:  # a dtype torch lacks (unsigned ints on older torch): the same bits
        if array.dtype.kind not in "uif":
            raise
        return torch.from_numpy(array.view(f"i{array.dtype.itemsize}"))


def to_plain(state: Any, _where: str = "state") -> Any:
    """``state`` with every numpy array and scalar replaced by a dict holding a tensor.

    Containers without numpy data inside are returned as they are (the very objects, so
    a module's ``state_dict`` keeps its ``OrderedDict`` and metadata).

    Args:
        state: nested dicts, lists and tuples of tensors, numpy arrays and scalars, and
            ``str``, ``int``, ``float``, ``bool`` or ``None``.

    Returns:
        The same structure holding tensors and plain data only.

    Raises:
        TypeError: an item of another type (naming where it is), or a numpy array of
            objects or strings.
    """
    if isinstance(state, np.ndarray | np.generic):  # (first: np.float64 is a float)
        array = np.asarray(state)
        if array.dtype.kind not in "biufc":
            raise TypeError(f"{_where} is a numpy array of {array.dtype}, not of numbers")
        return {
            NUMPY_KEY: _array_to_tensor(array),
            "dtype": array.dtype.str,
            "scalar": isinstance(state, np.generic),
        }
    if isinstance(state, _PLAIN_LEAVES):
        return state
    if isinstance(state, Mapping):
        items = {key: to_plain(value, f"{_where}[{key!r}]") for key, value in state.items()}
        return _rebuilt(state, items, items.values(), state.values())
    if isinstance(state, list | tuple):
        items = [to_plain(value, f"{_where}[{i}]") for i, value in enumerate(state)]
        return _rebuilt(state, items, items, state)
    raise TypeError(
        f"{_where} is a {type(state).__module__}.{type(state).__qualname__}; a checkpoint "
        "holds tensors, numpy arrays, str, int, float, bool and None in dicts, lists and tuples"
    )


def _rebuilt(original: Any, items: Any, new_values: Any, old_values: Any) -> Any:
    """``original`` itself if no item changed and its type is plain, else ``items`` in one.

    ``dict``, ``OrderedDict`` (an ``nn.Module`` state dict's ``_metadata`` kept), ``list``
    and ``tuple`` stay what they are; another mapping becomes a ``dict``, another sequence
    (a named tuple) a ``tuple``.
    """
    kind = type(original)
    plain = kind in (dict, OrderedDict, list, tuple)
    if plain and all(new is old for new, old in zip(new_values, old_values, strict=True)):
        return original
    if isinstance(original, Mapping):
        new = kind(items) if plain else dict(items)
        metadata = getattr(original, "_metadata", None)
        if plain and metadata is not None:
            new._metadata = metadata
        return new
    return kind(items) if plain else tuple(items)


def _is_numpy(node: Mapping) -> bool:
    return NUMPY_KEY in node and set(node) == {NUMPY_KEY, "dtype", "scalar"}


def from_plain(state: Any) -> Any:
    """:func:`to_plain`'s inverse: the numpy arrays and scalars are back, as they were.

    Args:
        state: what :func:`to_plain` returned (after a round trip through a file).

    Returns:
        The structure with numpy arrays and scalars in place of their dicts.
    """
    if isinstance(state, Mapping):
        if _is_numpy(state):
            array = state[NUMPY_KEY].numpy().view(np.dtype(state["dtype"]))
            return array[()] if state["scalar"] else array
        items = {key: from_plain(value) for key, value in state.items()}
        return _rebuilt(state, items, items.values(), state.values())
    if isinstance(state, list | tuple):
        items = [from_plain(value) for value in state]
        return _rebuilt(state, items, items, state)
    return state
