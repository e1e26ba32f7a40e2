"""Import paths of 0.1.0's flat layout, kept as aliases for one release.

Configs written for 0.1.0 name ``_target_: mbrl_bound_plugin.model.BoundTransitionRewardModel``
and the like. Importing such a path gives the module's new home and a
``DeprecationWarning`` naming it; the aliases go in the next release.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings

MOVED = {
    "agent": "planning.sac_agent",
    "algorithm": "algorithms.bound",
    "bound": "objective",
    "checkpoint": "util.checkpoint",
    "compare": "cli.compare",
    "discriminator": "models.discriminator",
    "envs": "env.factory",
    "maze": "env.maze",
    "model": "models.model_wrapper",
    "run": "algorithms.bound_run",
    "run_state": "util.state",
    "scored_buffer": "util.replay_buffer",
    "wall_time": "util.wall_time",
}
PACKAGE = __name__.rpartition(".")[0]


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``mbrl_bound_plugin.<old name>`` and loads the module that replaced it."""

    def find_spec(
        self, fullname: str, path=None, target=None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != PACKAGE or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        new = f"{PACKAGE}.{MOVED[spec.name.rpartition('.')[2]]}"
        warnings.warn(
            f"{spec.name} is deprecated and goes in the next release: use {new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module was imported under its new name."""


def install() -> None:
    """Puts the alias finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())
