"""mbrl-bound: joint model-policy training on the MnM lower bound, for mbrl-lib.

Public names (imported lazily, so ``mbrl_bound_plugin.tabular`` stays numpy-only):

- :func:`train`: ``algorithm=bound``, with ``mbrl.algorithms.mbpo.train``'s signature.
- :class:`Discriminator`: ``C(s, a, s')``, whose logit estimates ``log p/q``.
- :class:`BoundTransitionRewardModel`: mbrl's 1-D model wrapper plus the bound term.
- :class:`BoundSACAgent`: mbrl's SAC trained on the augmented reward.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "train": "mbrl_bound_plugin.algorithm",
    "Discriminator": "mbrl_bound_plugin.discriminator",
    "BoundTransitionRewardModel": "mbrl_bound_plugin.model",
    "BoundSACAgent": "mbrl_bound_plugin.agent",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
