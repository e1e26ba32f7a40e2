"""Wall time of algorithm=bound against mbrl's MBPO, per environment step and per component.

Both sides run in this process on one configuration (same overrides, seed and budget),
alternating so that machine noise hits both alike: after an untimed short run of each
(``--warmup-steps``; one-time costs such as first allocations would otherwise be charged
to whichever side runs first), repeat r runs bound then mbpo when r is even, mbpo then
bound when it is odd. The MBPO side is mbrl's own ``mbrl.algorithms.mbpo.train``.
Model training runs a fixed number of epochs on both sides (``--model-epochs``, early
stopping off), so that the ratio measures the algorithm and not how soon mbrl's
patience stops training. ``--early-stopping`` measures the other thing, the cost as a
user runs it: each side trains its model as the task's settings say (mbrl's patience,
no epoch cap), and the model epochs each side trained are printed beside the times.

Each component is timed by wrapping the function that does it, on both sides alike; a
component's time excludes the other components timed inside it:

- model updates: ``OneDTransitionRewardModel.update`` (and the bound model's override);
- model validation: their ``eval_score``;
- model training, other: the rest of mbrl's ``train_model_and_save_model_and_data``
  (batching, normalizer, saving the model and data);
- discriminator step: ``mbrl_bound_plugin.algorithms.bound.discriminator_step``;
- rollouts: mbrl's ``rollout_model_and_populate_sac_buffer``, without the scoring and
  the tilt inside it;
- model step tilt: ``BudgetedOptimism.sample`` (with ``algorithm.optimism.method`` set),
  the value-tilted draw of each model step: bound's own work inside the shared rollouts;
- scoring: ``ScoredReplayBuffer._score``, the discriminator's logits of SAC's buffer: of
  the rows the rollouts add, and of every row after each discriminator step;
- SAC updates: ``SAC.update_parameters``, without the relabelling inside it;
- relabelling: ``BoundSACAgent.augmented_reward`` (the reward of SAC's batches, from
  their stored logits);
- evaluation: mbrl's ``mbpo.evaluate``;
- checkpoints: ``BoundRun.state_dict`` and ``Checkpointer.save`` (bound only;
  ``checkpoint.every_epochs`` sets how often);
- other: the rest (environment steps, the loop).

Two ratios are printed per repeat and as medians:

- end to end: bound's seconds per step over MBPO's (what the README's cost target is set in);
- bound's own work: MBPO's seconds per step plus what bound spends more in the
  components whose work differs (:data:`BOUND_WORK`: model updates and validation with
  the bound term, the discriminator step, the model step tilt, scoring, relabelling,
  checkpoints), over
  MBPO's seconds per step. The shared components (SAC updates, rollouts, evaluation,
  the rest) compute the same on both sides (same networks, batch sizes and counts), so
  this ratio is the end-to-end one without the noise of timing the shared work twice;
  it is not a replacement for it (a side effect of bound on the shared work, such as
  slower SAC updates, shows only end to end).

Both are printed twice: in wall time, and in the process's CPU time (all its threads),
which a shared machine's noise touches less: time the process spends waiting for a core
another process holds counts in the wall clock only (a thread that spins while it waits
counts in both). If the two sides differ in the wall time of the shared work but not in
its CPU time, the difference was waiting, not work. On a GPU, CPU time is the host's
work only; the wall-time ratios are the ones to read.

On the 2-core VM with two threads, SAC's updates (the same work on both sides) took up to
13% more or less time on one side than on the other, in CPU time as much as in wall time,
and which side varied between sittings; with ``--threads 1`` (as the benchmark's runs
use) they stayed within 4%. ``--flush-denormal`` (``torch.set_flush_denormal``) did not
remove the two-thread noise nor change the one-thread ratio; ``benchmarks/denormals.py``
looks at the denormals themselves.

    python benchmarks/overhead.py [--task inv_pendulum|halfcheetah] [--repeats 3]
        [--steps N] [--model-epochs 20] [--warmup-steps 50] [--device cpu|cuda:0]
        [--threads N] [--flush-denormal] [--early-stopping] [--json FILE]
        [HYDRA_OVERRIDE ...]
    python benchmarks/overhead.py --summarize FILE   # the tables again, from a --json FILE

On a GPU (``--device cuda:0``) every component boundary waits for the GPU
(``torch.cuda.synchronize``), so each component is charged for its own kernels.

This is a benchmark (numbers printed), not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator

import mbrl.algorithms.mbpo as mbpo
import mbrl.models
import mbrl.util.common
import numpy as np
import torch
from mbrl.third_party.pytorch_sac_pranz24.sac import SAC

import mbrl_bound_plugin.algorithms.bound as bound_algorithm
from mbrl_bound_plugin import compose
from mbrl_bound_plugin.algorithms.bound_run import BoundRun
from mbrl_bound_plugin.env.factory import make_env
from mbrl_bound_plugin.models.model_wrapper import BoundTransitionRewardModel
from mbrl_bound_plugin.models.optimism import BudgetedOptimism
from mbrl_bound_plugin.planning.sac_agent import BoundSACAgent
from mbrl_bound_plugin.util.checkpoint import Checkpointer
from mbrl_bound_plugin.util.replay_buffer import ScoredReplayBuffer

# mbrl's MBPO settings with budgets that fit a benchmark on 2 cores.
TASKS = {
    "inv_pendulum": [
        "overrides=mbpo_inv_pendulum_v5",
        "algorithm.initial_exploration_steps=250",
        "overrides.epoch_length=250",
    ],
    "halfcheetah": [
        "overrides=mbpo_halfcheetah_v5",
        "algorithm.initial_exploration_steps=500",
        "overrides.epoch_length=250",
    ],
}
DEFAULT_STEPS = {"inv_pendulum": 750, "halfcheetah": 500}
# (component, [(owner, function name), ...]); nested calls of one component count once
COMPONENTS: list[tuple[str, list[tuple[object, str]]]] = [
    ("model training", [(mbrl.util.common, "train_model_and_save_model_and_data")]),
    (
        "model updates",
        [(mbrl.models.OneDTransitionRewardModel, "update"), (BoundTransitionRewardModel, "update")],
    ),
    (
        "model validation",
        [
            (mbrl.models.OneDTransitionRewardModel, "eval_score"),
            (BoundTransitionRewardModel, "eval_score"),
        ],
    ),
    ("discriminator step", [(bound_algorithm, "discriminator_step")]),
    (
        "rollouts",  # (bound's module imports mbrl's functions by name: both names wrapped)
        [
            (mbpo, "rollout_model_and_populate_sac_buffer"),
            (bound_algorithm, "rollout_model_and_populate_sac_buffer"),
        ],
    ),
    ("model step tilt", [(BudgetedOptimism, "sample")]),
    ("scoring", [(ScoredReplayBuffer, "_score")]),
    ("SAC updates", [(SAC, "update_parameters")]),
    ("relabelling", [(BoundSACAgent, "augmented_reward")]),
    ("evaluation", [(mbpo, "evaluate"), (bound_algorithm, "evaluate")]),
    ("checkpoints", [(BoundRun, "state_dict"), (Checkpointer, "save")]),
]
# components whose work differs between the sides (the rest is the same computation)
BOUND_WORK = (
    "model updates",
    "model validation",
    "discriminator step",
    "model step tilt",
    "scoring",
    "relabelling",
    "checkpoints",
)


class Timers:
    """Seconds spent in each component, by wrapping the functions that do them.

    Two clocks per component: wall time (``time.perf_counter``) and the process's CPU time
    (``time.process_time``, all its threads). A component's seconds exclude those of the
    other components called inside it (e.g. model updates inside model training, scoring
    inside rollouts).
    """

    def __init__(self, sync: Callable[[], None] = lambda: None) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        # on a GPU, torch.cuda.synchronize: kernels finish inside the component that queued them
        self._sync = sync
        # the components running now, outermost first: [name, wall inside others, cpu inside others]
        self._stack: list[list] = []

    def _timed(self, name: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if any(frame[0] == name for frame in self._stack):  # (bound model's update
                return fn(*args, **kwargs)  # calling mbrl's: counted once)
            self._stack.append([name, 0.0, 0.0])
            self._sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._sync()
                elapsed = time.perf_counter() - start
                cpu = time.process_time() - cpu_start
                _, inner, cpu_inner = self._stack.pop()
                self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - inner
                self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + cpu - cpu_inner
                if self._stack:
                    self._stack[-1][1] += elapsed
                    self._stack[-1][2] += cpu

        return wrapper

    @contextlib.contextmanager
    def installed(self) -> Iterator[Timers]:
        saved = []
        for name, targets in COMPONENTS:
            for owner, attr in targets:
                original = owner.__dict__[attr]
                saved.append((owner, attr, original))
                setattr(owner, attr, self._timed(name, original))
        try:
            yield self
        finally:
            for owner, attr, original in reversed(saved):
                setattr(owner, attr, original)

    def breakdown(self, total: float, cpu: bool = False) -> dict[str, float]:
        """Seconds per component (nested ones taken out of their parents), plus ``other``:
        wall seconds, or CPU seconds with ``cpu`` (``total`` is then the run's CPU time)."""
        seconds = self.cpu_seconds if cpu else self.seconds
        out = {name: seconds.get(name, 0.0) for name, _ in COMPONENTS}
        out["other"] = total - sum(out.values())
        return {
            ("model training, other" if k == "model training" else k): v for k, v in out.items()
        }


def fixed_epoch_overrides(task: str, device: str = "cpu", model_epochs: int = 20) -> list[str]:
    """Both sides' overrides: the task's MBPO settings on ``device``, with every model
    training running exactly ``model_epochs`` epochs (early stopping off)."""
    return [
        *TASKS[task],
        f"device={device}",
        f"+overrides.num_epochs_train_model={model_epochs}",
        "overrides.patience=0",  # (mbrl: 0 turns early stopping off)
    ]


def early_stopping_overrides(task: str, device: str = "cpu") -> list[str]:
    """Both sides' overrides: the task's MBPO settings on ``device``, model training as
    they say (mbrl's early stopping)."""
    return [*TASKS[task], f"device={device}"]


@contextlib.contextmanager
def counting_model_epochs() -> Iterator[list[int]]:
    """The number of epochs of each of mbrl's ``ModelTrainer.train`` calls (its training
    losses, one per epoch), in a list that grows while the context is open."""
    epochs: list[int] = []
    original = mbrl.models.ModelTrainer.__dict__["train"]

    @functools.wraps(original)
    def train(*args, **kwargs):
        result = original(*args, **kwargs)
        epochs.append(len(result[0]))
        return result

    mbrl.models.ModelTrainer.train = train
    try:
        yield epochs
    finally:
        mbrl.models.ModelTrainer.train = original


def time_run(algorithm: str, overrides: list[str]) -> list:
    """One run: ``[wall s/step, {component: wall s/step}, CPU s/step, {component: CPU s/step},
    model epochs trained]``."""
    cfg = compose([f"algorithm={algorithm}", *overrides])
    env, term_fn, _ = make_env(cfg)
    test_env, *_ = make_env(cfg)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    train = mbpo.train if algorithm == "mbpo" else bound_algorithm.train
    sync = torch.cuda.synchronize if str(cfg.device).startswith("cuda") else (lambda: None)
    with (
        tempfile.TemporaryDirectory() as work_dir,
        Timers(sync).installed() as timers,
        counting_model_epochs() as epochs,
    ):
        start, cpu_start = time.perf_counter(), time.process_time()
        train(env, test_env, term_fn, cfg, silent=True, work_dir=work_dir)
        sync()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
    steps = cfg.overrides.num_steps
    return [
        elapsed / steps,
        {k: v / steps for k, v in timers.breakdown(elapsed).items()},
        cpu / steps,
        {k: v / steps for k, v in timers.breakdown(cpu, cpu=True).items()},
        sum(epochs),
    ]


def own_work_ratio(bound: dict[str, float], mbpo_total: float, mbpo: dict[str, float]) -> float:
    """MBPO's time plus bound's extra time in :data:`BOUND_WORK`, over MBPO's time."""
    extra = sum(bound.get(k, 0.0) - mbpo.get(k, 0.0) for k in BOUND_WORK)
    return (mbpo_total + extra) / mbpo_total


def _median_line(name: str, ratios: list[float]) -> str:
    return (
        f"median ratio bound/mbpo, {name}, over {len(ratios)} repeats: "
        f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
    )


def _tables(runs: dict[str, list], clock: int, unit: str) -> list[float]:
    """Ratios and per-component table of one clock (0: wall, 2: CPU); the end-to-end ratios."""
    pairs = list(zip(runs["bound"], runs["mbpo"], strict=True))
    end_to_end = [b[clock] / m[clock] for b, m in pairs]
    own = [own_work_ratio(b[clock + 1], m[clock], m[clock + 1]) for b, m in pairs]
    print(_median_line(f"end to end, {unit}", end_to_end))
    print(_median_line(f"bound's own work, {unit}", own))
    print(
        f"\n| component | bound ({unit} ms/step) | mbpo ({unit} ms/step) | difference |"
        "\n|---|---:|---:|---:|"
    )
    medians = {
        a: {k: statistics.median(r[clock + 1][k] for r in rs) for k in rs[0][clock + 1]}
        for a, rs in runs.items()
    }
    for key in medians["bound"]:
        b, m = medians["bound"][key] * 1e3, medians["mbpo"][key] * 1e3
        print(f"| {key} | {b:.2f} | {m:.2f} | {b - m:+.2f} |")
    total = {a: statistics.median(r[clock] for r in rs) * 1e3 for a, rs in runs.items()}
    print(f"| **total** | {total['bound']:.2f} | {total['mbpo']:.2f} | "
          f"{total['bound'] - total['mbpo']:+.2f} |")  # fmt: skip
    return end_to_end


def summarize(runs: dict[str, list]) -> list[float]:
    """Prints the ratios and the per-component table of ``runs`` (``--json``'s ``runs``), in
    wall time and, where the runs have it (files saved before it was recorded do not), in
    CPU time, and the model epochs each side trained where recorded; returns the
    end-to-end wall-time ratio of each repeat."""
    end_to_end = _tables(runs, 0, "wall")
    if all(len(r) >= 4 for rs in runs.values() for r in rs):
        print()
        _tables(runs, 2, "CPU")
    if all(len(r) >= 5 for rs in runs.values() for r in rs):
        print()
        for algorithm, rs in runs.items():
            print(f"model epochs trained, {algorithm}: {', '.join(str(r[4]) for r in rs)}")
    return end_to_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=list(TASKS), default="inv_pendulum")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, help="environment steps after exploration")
    parser.add_argument("--model-epochs", type=int, default=20, help="epochs per model training")
    parser.add_argument(
        "--early-stopping",
        action="store_true",
        help="train the model as the task's settings say (mbrl's patience) instead of "
        "--model-epochs epochs",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=50,
        help="steps after exploration of the untimed first run of each side (0: none)",
    )
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--summarize", metavar="FILE", help="print the tables of a --json file")
    parser.add_argument("--device", default="cpu", help="torch device of both sides, e.g. cuda:0")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's own)")
    parser.add_argument(
        "--flush-denormal",
        action="store_true",
        help="flush denormal floats to zero on both sides (torch.set_flush_denormal)",
    )
    args, extra = parser.parse_known_args()
    if args.summarize:
        with open(args.summarize) as f:
            saved = json.load(f)
        conditions = [f"{saved['threads']} threads"] if "threads" in saved else []
        if saved.get("flush_denormal"):
            conditions.append("denormals flushed to zero")
        if saved.get("early_stopping"):
            conditions.append("mbrl's early stopping")
        print(
            f"# {args.summarize}: {' '.join(saved['overrides'])}"
            + "".join(f"; {c}" for c in conditions)
        )
        summarize(saved["runs"])
        return
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        parser.error("--flush-denormal: this CPU cannot flush denormals (torch.set_flush_denormal)")
    steps = args.steps or DEFAULT_STEPS[args.task]
    if args.early_stopping:
        overrides = [*early_stopping_overrides(args.task, args.device), *extra]
    else:
        overrides = [*fixed_epoch_overrides(args.task, args.device, args.model_epochs), *extra]
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
        + (", denormals flushed to zero" if args.flush_denormal else "")
        + (", mbrl's early stopping" if args.early_stopping else "")
        + (f", {torch.cuda.get_device_name(args.device)}" if args.device.startswith("cuda") else "")
    )
    print(f"# overrides: {' '.join(overrides)} overrides.num_steps={steps}")
    runs: dict[str, list[list]] = {"bound": [], "mbpo": []}
    if args.warmup_steps:
        for algorithm in runs:  # untimed: one-time costs fall here, on neither side
            time_run(algorithm, [*overrides, f"overrides.num_steps={args.warmup_steps}"])
    overrides.append(f"overrides.num_steps={steps}")
    for rep in range(args.repeats):
        order = ("bound", "mbpo") if rep % 2 == 0 else ("mbpo", "bound")
        for algorithm in order:
            runs[algorithm].append(time_run(algorithm, overrides))
        bound_s, bound_parts, bound_cpu, _, bound_epochs = runs["bound"][-1]
        mbpo_s, mbpo_parts, mbpo_cpu, _, mbpo_epochs = runs["mbpo"][-1]
        print(
            f"repeat {rep}: bound {bound_s * 1e3:.1f} ms/step, mbpo {mbpo_s * 1e3:.1f} ms/step, "
            f"ratio {bound_s / mbpo_s:.3f} (bound's own work: "
            f"{own_work_ratio(bound_parts, mbpo_s, mbpo_parts):.3f}; CPU time: "
            f"{bound_cpu / mbpo_cpu:.3f}; model epochs: bound {bound_epochs}, "
            f"mbpo {mbpo_epochs})",
            flush=True,
        )
    ratios = summarize(runs)
    if args.json:
        with open(args.json, "w") as f:
            saved = {
                "overrides": overrides,
                "threads": torch.get_num_threads(),
                "flush_denormal": args.flush_denormal,
                "early_stopping": args.early_stopping,
                "ratios": ratios,
                "runs": runs,
            }
            json.dump(saved, f, indent=1)


if __name__ == "__main__":
    main()
