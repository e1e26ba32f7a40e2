"""0.1.0's flat import paths still work for one release, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys

import hydra.utils
import pytest

from mbrl_bound_plugin import _deprecated


@pytest.mark.parametrize(("old", "new"), sorted(_deprecated.MOVED.items()))
def test_an_old_module_path_gives_the_new_module_and_warns(old, new):
    sys.modules.pop(f"mbrl_bound_plugin.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"mbrl_bound_plugin.{new}"):
        module = importlib.import_module(f"mbrl_bound_plugin.{old}")
    assert module is importlib.import_module(f"mbrl_bound_plugin.{new}")
    assert module.__name__ == f"mbrl_bound_plugin.{new}"


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("mbrl_bound_plugin.model.BoundTransitionRewardModel", "BoundTransitionRewardModel"),
        ("mbrl_bound_plugin.discriminator.Discriminator", "Discriminator"),
        ("mbrl_bound_plugin.agent.BoundSACAgent", "BoundSACAgent"),
    ],
)
def test_a_config_naming_an_old_target_still_instantiates_the_class(target, name):
    old_module = target.rsplit(".", 1)[0]
    sys.modules.pop(old_module, None)
    vars(importlib.import_module("mbrl_bound_plugin")).pop(old_module.rsplit(".", 1)[1], None)
    # Hydra's _locate, as `_target_` uses it
    with pytest.warns(DeprecationWarning):
        cls = hydra.utils.get_class(target)
    assert cls.__name__ == name
    assert cls.__module__ != old_module
    assert cls.__module__ in {f"mbrl_bound_plugin.{new}" for new in _deprecated.MOVED.values()}


def test_the_new_paths_do_not_warn(recwarn):
    importlib.import_module("mbrl_bound_plugin.models.model_wrapper")
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_an_unknown_old_name_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("mbrl_bound_plugin.no_such_module")
