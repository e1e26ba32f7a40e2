"""Hydra SearchPathPlugin: adds mbrl-bound's configs and mbrl's own example configs.

Hydra discovers every module under the ``hydra_plugins`` namespace package, so once
``mbrl-bound`` is installed any Hydra app (including mbrl's own ``examples/main.py``
style apps) can select ``algorithm=bound`` or the ``action_optimizer`` group that
mbrl's PyPI wheel does not ship.
"""

from __future__ import annotations

import importlib.util
import pathlib

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


def _package_dir(name: str) -> pathlib.Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def mbrl_bound_conf_dir() -> pathlib.Path:
    """Directory of this package's config groups (works for editable and wheel installs)."""
    path = _package_dir("mbrl_bound_plugin.conf")  # wheel install: shipped in the package
    if path is not None:
        return path
    package = _package_dir("mbrl_bound_plugin")  # source checkout / editable install
    if package is not None and (package.parent / "conf" / "main.yaml").is_file():
        return package.parent / "conf"
    raise RuntimeError("mbrl-bound's configs not found: reinstall mbrl-bound")


def mbrl_examples_conf_dir() -> pathlib.Path | None:
    """mbrl's installed ``examples/conf`` (a plain folder, not a package: use file://)."""
    path = _package_dir("mbrl")
    if path is None:
        return None
    conf = path / "examples" / "conf"
    return conf if conf.is_dir() else None


class MbrlBoundSearchPathPlugin(SearchPathPlugin):
    """Appends mbrl-bound's ``conf/`` and mbrl's ``examples/conf`` to every Hydra app."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append("mbrl-bound", f"file://{mbrl_bound_conf_dir()}")
        mbrl_conf = mbrl_examples_conf_dir()
        if mbrl_conf is not None:
            search_path.append("mbrl", f"file://{mbrl_conf}")
