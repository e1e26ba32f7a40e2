"""Size and wall time of one algorithm=bound checkpoint, by replay-buffer size.

The state is what ``train`` writes, at the sizes of mbrl's MBPO HalfCheetah settings
(obs 17, action 6; 7-member ensemble of 4 x 200 units; SAC with 512 units; a
discriminator of 2 x 200 units), with ``N`` stored transitions. Prints, per ``N``, the
file size and the seconds to write it (serialize, digest, fsync, rename) and to read it
back (read, check the digest, unpickle).

    python benchmarks/checkpoint.py [--rows 10000 100000 400000] [--dir DIR]

This is a benchmark (numbers printed), not a test.
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import tempfile
import time

import mbrl.models
import mbrl.util
import numpy as np
import omegaconf
import torch
from mbrl.third_party.pytorch_sac_pranz24.sac import SAC

from mbrl_bound_plugin import run_state
from mbrl_bound_plugin.checkpoint import load_checkpoint, save_checkpoint
from mbrl_bound_plugin.discriminator import Discriminator
from mbrl_bound_plugin.envs import box_space

OBS, ACT = 17, 6


def state_with(rows: int) -> dict:
    """A checkpoint state with ``rows`` transitions and HalfCheetah-sized networks."""
    rng = np.random.default_rng(0)
    buffer = mbrl.util.ReplayBuffer(rows, (OBS,), (ACT,), rng=rng)
    data = rng.normal(size=(rows, 2 * OBS + ACT + 1)).astype(np.float32)
    buffer.add_batch(
        data[:, :OBS],
        data[:, OBS : OBS + ACT],
        data[:, OBS + ACT : 2 * OBS + ACT],
        data[:, -1],
        np.zeros(rows, bool),
        np.zeros(rows, bool),
    )
    model = mbrl.models.GaussianMLP(
        OBS + ACT, OBS + 1, "cpu", num_layers=4, ensemble_size=7, hid_size=200
    )
    args = omegaconf.OmegaConf.create(
        {
            "gamma": 0.99,
            "tau": 0.005,
            "alpha": 0.2,
            "policy": "Gaussian",
            "target_update_interval": 1,
            "automatic_entropy_tuning": True,
            "target_entropy": -ACT,
            "hidden_size": 512,
            "device": "cpu",
            "lr": 3e-4,
        }
    )
    sac = SAC(OBS, box_space([-1.0] * ACT, [1.0] * ACT), args)
    discriminator = Discriminator(OBS, ACT, hid_size=200, num_layers=2)
    return {
        "model": model.state_dict(),
        "discriminator": discriminator.training_state(),
        "sac": run_state.sac_state(sac),
        "replay_buffer": run_state.buffer_state(buffer),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 400_000])
    parser.add_argument("--dir", type=pathlib.Path, default=None, help="where to write")
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"# {platform.node()} {machine}, torch {torch.__version__}")
    print("| transitions | file MB | write s | read s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for rows in args.rows:
            state = state_with(rows)
            start = time.perf_counter()
            path = save_checkpoint(pathlib.Path(tmp), rows, state)
            written = time.perf_counter() - start
            start = time.perf_counter()
            load_checkpoint(path)
            read = time.perf_counter() - start
            size = path.stat().st_size / 2**20
            print(f"| {rows} | {size:.1f} | {written:.2f} | {read:.2f} |", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
