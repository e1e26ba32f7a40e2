"""Denormal floats in SAC's state after a run of each side, and whether they slow SAC's updates.

Runs ``algorithm=bound`` and mbrl's MBPO once each at ``overhead.py``'s settings (fixed
model epochs, one torch thread), keeps the SAC agent and the buffer it trained on at the
end, and prints:

- how many float32 values are subnormal (nonzero, below ``torch.finfo(float32).tiny``)
  in the parameters, gradients and Adam moments of SAC's policy and critics;
- the milliseconds of a SAC update from a copy of that state, with denormals kept and
  flushed to zero (``torch.set_flush_denormal``), alternating, twice each.

Denormals are slow on many x86 CPUs; if they slowed one side's SAC updates, the flushed
updates would be faster there.

    python benchmarks/denormals.py [--task halfcheetah] [--steps 500] [--updates 300]

This is a benchmark (numbers printed), not a test.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import overhead
import torch
from mbrl.third_party.pytorch_sac_pranz24.sac import SAC

TINY = torch.finfo(torch.float32).tiny


def subnormal(tensors: list[torch.Tensor]) -> tuple[int, int]:
    """(subnormal values, all values) over ``tensors``."""
    count = total = 0
    for t in tensors:
        t = t.detach().float()
        count += int(((t != 0) & (t.abs() < TINY)).sum())
        total += t.numel()
    return count, total


def census(sac: SAC) -> dict[str, tuple[int, int]]:
    """Subnormal counts of SAC's policy and critics: parameters, gradients, Adam moments."""
    out = {}
    for name, net, optim in [
        ("policy", sac.policy, sac.policy_optim),
        ("critic", sac.critic, sac.critic_optim),
    ]:
        params = list(net.parameters())
        out[f"{name} parameters"] = subnormal(params)
        out[f"{name} gradients"] = subnormal([p.grad for p in params if p.grad is not None])
        for moment in ("exp_avg", "exp_avg_sq"):
            out[f"{name} Adam {moment}"] = subnormal([s[moment] for s in optim.state.values()])
    return out


def update_ms(sac: SAC, memory, update, flush: bool, updates: int, batch_size: int) -> float:
    """Milliseconds per SAC update from a copy of ``sac``, with denormals flushed or not."""
    if torch.is_tensor(sac.alpha):  # (a non-leaf tensor, which deepcopy refuses)
        sac.alpha = sac.alpha.detach()
    sac = copy.deepcopy(sac)
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_flush_denormal(flush)
    try:
        start = time.perf_counter()
        for i in range(updates):
            update(sac, memory, batch_size, i)
        return (time.perf_counter() - start) / updates * 1e3
    finally:
        torch.set_flush_denormal(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=list(overhead.TASKS), default="halfcheetah")
    parser.add_argument(
        "--steps", type=int, default=500, help="environment steps after exploration"
    )
    parser.add_argument("--updates", type=int, default=300, help="SAC updates per timing")
    args = parser.parse_args()
    if args.steps < 1 or args.updates < 1:
        parser.error("--steps and --updates must be at least 1")
    if not torch.set_flush_denormal(False):
        parser.error("this CPU cannot flush denormals (torch.set_flush_denormal)")
    torch.set_num_threads(1)
    overrides = [*overhead.fixed_epoch_overrides(args.task), f"overrides.num_steps={args.steps}"]
    update = SAC.update_parameters
    last = {}

    def keep_last(sac, memory, batch_size, *rest, **kwargs):
        last.update(sac=sac, memory=memory, batch_size=batch_size)
        return update(sac, memory, batch_size, *rest, **kwargs)

    print(f"# {args.task}, {args.steps} steps, {args.updates} SAC updates per timing, 1 thread")
    SAC.update_parameters = keep_last
    try:
        for algorithm in ("mbpo", "bound"):
            overhead.time_run(algorithm, overrides)
            sac, memory, batch_size = last["sac"], last["memory"], last["batch_size"]
            print(f"## {algorithm}: subnormal float32 values")
            for key, (count, total) in census(sac).items():
                print(f"  {key}: {count} of {total}")
            for flush in (False, True, False, True):
                ms = update_ms(sac, memory, update, flush, args.updates, batch_size)
                print(f"  SAC update, denormals {'flushed' if flush else 'kept'}: {ms:.2f} ms")
    finally:
        SAC.update_parameters = update


if __name__ == "__main__":
    main()
