"""The one-line error helper."""

from __future__ import annotations

from mbrl_bound_plugin.errors import first_line


def test_first_line_keeps_only_what_is_wrong():
    error = ValueError("  key 'x' is missing\nSee https://hydra.cc for details\n")
    assert first_line(error) == "key 'x' is missing"


def test_first_line_of_an_empty_message_names_the_error():
    assert first_line(KeyError()) == "KeyError()"
