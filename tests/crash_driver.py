"""Runs ``mbrl-bound`` with one fault injected at a chosen point (for test_resume.py).

    python tests/crash_driver.py FAULT N -- HYDRA OVERRIDES...

FAULT is one of:

- ``kill-at-step`` / ``term-at-step``: SIGKILL / SIGTERM this process right after the
  N-th environment step (counting the initial exploration steps);
- ``term-at-step-with-handler``: the same SIGTERM, with a SIGTERM handler installed
  beforehand that only reports being called (like submitit's, which ignores SIGTERM);
- ``kill-in-write``: during the N-th checkpoint write, write half of the file, then
  SIGKILL this process (what is on disk when a kill lands mid-write);
- ``full-disk-at-write``: the N-th checkpoint write goes to ``/dev/full``, which fails
  with ENOSPC like a full disk.

The signals are real (``os.kill`` on this process) and so is the ENOSPC; only where
they happen is chosen, by wrapping the function that runs at that point.
"""

from __future__ import annotations

import os
import signal
import sys

import mbrl.util.common

from mbrl_bound_plugin.cli import main as cli
from mbrl_bound_plugin.util import checkpoint


def main() -> None:
    fault, n, separator, *overrides = sys.argv[1:]
    assert separator == "--", __doc__
    n = int(n)
    calls = 0

    if fault in ("kill-at-step", "term-at-step", "term-at-step-with-handler"):
        step = mbrl.util.common.step_env_and_add_to_buffer
        sig = signal.SIGKILL if fault == "kill-at-step" else signal.SIGTERM
        if fault == "term-at-step-with-handler":
            signal.signal(
                signal.SIGTERM, lambda *_: print("framework handler called", file=sys.stderr)
            )

        def step_then_signal(*args, **kwargs):
            nonlocal calls
            out = step(*args, **kwargs)
            calls += 1
            if calls == n:
                os.kill(os.getpid(), sig)
            return out

        mbrl.util.common.step_env_and_add_to_buffer = step_then_signal
    elif fault in ("kill-in-write", "full-disk-at-write"):
        write = checkpoint._write_file

        def faulty_write(path, header, payload):
            nonlocal calls
            calls += 1
            if calls == n and fault == "kill-in-write":
                with open(path, "wb") as f:
                    f.write(header + bytes(payload[: len(payload) // 2]))
                    f.flush()
                    os.fsync(f.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            if calls == n and fault == "full-disk-at-write":
                os.symlink("/dev/full", path)
            write(path, header, payload)

        checkpoint._write_file = faulty_write
    else:
        raise SystemExit(f"unknown fault {fault!r}\n{__doc__}")
    cli.main(overrides)


if __name__ == "__main__":
    main()
