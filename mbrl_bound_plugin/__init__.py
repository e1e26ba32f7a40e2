"""mbrl-bound: joint model-policy training on the MnM lower bound, for mbrl-lib.

The public API (imported on first use, so ``mbrl_bound_plugin.tabular`` stays numpy-only):

- :func:`compose`: the configuration ``mbrl-bound OVERRIDES`` would run.
- :func:`make_env`: ``(env, term_fn, reward_fn)`` for a configuration, as mbrl's
  ``EnvHandler.make_env``.
- :func:`train`: ``algorithm=bound``, with ``mbrl.algorithms.mbpo.train``'s signature.
- :class:`BoundRun`: the run as one object (components, buffers, counters; ``state_dict``).
- :class:`Discriminator`: ``C(s, a, s')``, whose logit estimates ``log p/q``.
- :class:`BoundTransitionRewardModel`: mbrl's 1-D model wrapper plus the bound term.
- :class:`BoundSACAgent`: mbrl's SAC trained on the augmented reward.

See ``docs/algorithm.md`` for what they compute.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from mbrl_bound_plugin import _deprecated

__version__ = "0.1.0"

MBRL_MISSING = (
    "mbrl-bound needs mbrl-lib: pip install --no-deps mbrl==0.2.0 "
    "(--no-deps: its own pins of hydra-core 1.0 and omegaconf 2.0 do not import on Python 3.11)"
)

_PUBLIC = {
    "compose": "mbrl_bound_plugin.config.composition",
    "make_env": "mbrl_bound_plugin.env.factory",
    "train": "mbrl_bound_plugin.algorithms.bound",
    "BoundRun": "mbrl_bound_plugin.algorithms.bound_run",
    "Discriminator": "mbrl_bound_plugin.models.discriminator",
    "BoundTransitionRewardModel": "mbrl_bound_plugin.models.model_wrapper",
    "BoundSACAgent": "mbrl_bound_plugin.planning.sac_agent",
}
__all__ = [*_PUBLIC, "__version__"]


def require_mbrl() -> None:
    """Raises ``ModuleNotFoundError`` with the install line when mbrl is not installed."""
    if importlib.util.find_spec("mbrl") is None:
        raise ModuleNotFoundError(MBRL_MISSING, name="mbrl")


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        require_mbrl()
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name in _deprecated.MOVED:  # Hydra's _locate asks the package before importing
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_deprecated.install()
