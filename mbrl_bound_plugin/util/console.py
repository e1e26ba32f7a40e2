"""mbrl's ``Logger`` with a quiet console: every row in the log files, a line an epoch shown.

mbrl's :class:`mbrl.util.Logger` writes each group to ``<group>.csv`` and prints it: the
model trainer's ``model_train`` group once per model-training epoch (tens of lines at
every model training), SAC's ``train``/``eval`` groups every ``log_frequency_agent``
updates, and the algorithm's ``results`` group once per epoch (MBPO, the bound) or
episode (PETS). :class:`ConsoleLogger` keeps the files as they are and prints only the
``results`` lines, unless ``verbose``; :func:`quiet_console` makes mbrl's own
``pets.train`` and ``mbpo.train`` build one.
"""

from __future__ import annotations

import contextlib
import io
import pathlib
from collections.abc import Collection, Iterator
from typing import Any
from unittest import mock

import mbrl.constants
import mbrl.third_party.pytorch_sac_pranz24.sac as sac_module
import mbrl.util
import tqdm

# the groups whose lines reach the console when not verbose: one line per epoch
CONSOLE_GROUPS = frozenset({mbrl.constants.RESULTS_LOG_NAME})


class ConsoleLogger(mbrl.util.Logger):
    """mbrl's ``Logger`` that prints only some groups; every group's CSV keeps every row.

    A printed line is written above the progress bar (``tqdm``), not across it.

    Args:
        log_dir: the directory where the CSV files go.
        enable_back_compatible: as mbrl's (registers SAC's ``train`` and ``eval`` groups).
        verbose: if ``True``, every group is printed, as by mbrl's ``Logger``.
        console_groups: the groups printed when not ``verbose``.
    """

    def __init__(
        self,
        log_dir: str | pathlib.Path,
        enable_back_compatible: bool = False,
        verbose: bool = False,
        console_groups: Collection[str] = CONSOLE_GROUPS,
    ):
        super().__init__(log_dir, enable_back_compatible=enable_back_compatible)
        self.verbose = verbose
        self.console_groups = frozenset(console_groups)

    @contextlib.contextmanager
    def _console(self, groups: Collection[str]) -> Iterator[None]:
        """Inside, mbrl's prints of ``groups`` reach the console, or nowhere."""
        if self.verbose or any(g in self.console_groups for g in groups):
            with tqdm.tqdm.external_write_mode():
                yield
        else:
            with contextlib.redirect_stdout(io.StringIO()):
                yield

    def _dump(self, group_name: str, save: bool = True) -> None:
        with self._console([group_name]):
            super()._dump(group_name, save)

    def dump(self, step: int, save: bool = True) -> None:
        """mbrl's dump of SAC's ``train`` and ``eval`` groups (for ``pytorch_sac``)."""
        with self._console(["train", "eval"]):
            super().dump(step, save)


def _no_print(*_args: Any, **_kwargs: Any) -> None:
    pass


@contextlib.contextmanager
def quiet_console(verbose: bool = False) -> Iterator[None]:
    """Inside, mbrl's algorithms print one line an epoch: loggers are :class:`ConsoleLogger` s.

    mbrl's ``pets.train`` and ``mbpo.train`` build their loggers as
    ``mbrl.util.Logger(...)``; while inside, that name stands for a :class:`ConsoleLogger`
    with this ``verbose``. Unless ``verbose``, SAC's "Saving models to ..." at each new
    best evaluation (``pytorch_sac_pranz24``'s ``save_checkpoint``) is not printed either.
    Import modules before entering: one that reads ``mbrl.util.Logger`` when imported
    (a type annotation resolved at import) would keep the stand-in.

    Args:
        verbose: if ``True``, everything is printed, as by mbrl.
    """

    class Logger(ConsoleLogger):
        def __init__(self, log_dir: str | pathlib.Path, enable_back_compatible: bool = False):
            super().__init__(log_dir, enable_back_compatible, verbose=verbose)

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(mbrl.util, "Logger", Logger))
        if not verbose:  # (a module global `print` stands for the builtin in that module)
            stack.enter_context(mock.patch.object(sac_module, "print", _no_print, create=True))
        yield
