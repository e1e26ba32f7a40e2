"""``mbrl-bound-compare``: bound against mbrl's MBPO and PETS, same tasks, budgets and seeds.

Each (task, config family) is one Hydra multirun of ``mbrl-bound``: bound and MBPO
share the MBPO overrides file, PETS uses the PETS one. Runs go through Hydra's joblib
launcher locally (``--workers``), through submitit on SLURM (``--launcher slurm``) or
through submitit's local executor (``--launcher submitit-local``: SLURM's time limits
and requeues on this machine). ``--resumable-mbpo`` runs the MBPO arm as
``algorithm=mbpo_resumable`` (MBPO in this package's loop, which checkpoints and resumes
like bound) instead of mbrl's own ``mbpo``, which starts over when interrupted. Budgets
and shared settings come from ``conf/compare/NAME.yaml`` (``--settings``: ``benchmark``,
``v2``, ``quick``), the arms from ``--algorithms`` (bound, mbpo, pets and bound's two
ablations), the seeds from ``--seeds`` and ``--first-seed``. At the end,
:func:`mbrl_bound_plugin.report.make_report` summarizes every run under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Sequence

import tqdm
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.mbrl_bound_plugin.mbrl_bound_searchpath import mbrl_bound_conf_dir
from mbrl_bound_plugin.errors import CompareError, ReportError
from mbrl_bound_plugin.report import make_report

PROG = "mbrl-bound-compare"
FAMILY = {
    "bound": "mbpo",
    "mbpo": "mbpo",
    "pets": "pets",
    "bound_no_model_term": "mbpo",  # ablation: beta = 0 (the ratio term in the policy only)
    "bound_no_policy_term": "mbpo",  # ablation: the model term only
}
DEFAULT_ALGORITHMS = ("bound", "mbpo", "pets")
RESUMABLE_MBPO = "mbpo_resumable"  # the MBPO arm with --resumable-mbpo
LAUNCHERS = {
    "joblib": "mbrl_bound_joblib",
    "slurm": "mbrl_bound_slurm",
    "submitit-local": "mbrl_bound_submitit_local",
}
LOCAL_LAUNCHERS = ("joblib", "submitit-local")  # several runs at once on this machine


def settings_names() -> list[str]:
    """The names of the compare settings in ``conf/compare/`` (``benchmark``, ...)."""
    return sorted(p.stem for p in (mbrl_bound_conf_dir() / "compare").glob("*.yaml"))


def load_settings(name: str) -> DictConfig:
    """Reads ``conf/compare/NAME.yaml`` (e.g. ``v2``, ``quick``) over ``benchmark.yaml``."""
    folder = mbrl_bound_conf_dir() / "compare"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise CompareError(
            f"no compare settings {name!r}; choose from: {', '.join(settings_names())}"
        )
    return OmegaConf.merge(OmegaConf.load(folder / "benchmark.yaml"), OmegaConf.load(path))


def sweep_commands(
    settings: DictConfig,
    tasks: Sequence[str],
    algorithms: Sequence[str],
    seeds: int,
    out: pathlib.Path,
    launcher: str = "joblib",
    workers: int = 2,
    extra: Sequence[str] = (),
    resumable_mbpo: bool = False,
    first_seed: int = 0,
) -> list[tuple[str, list[str]]]:
    """The ``mbrl-bound -m`` command lines of a comparison, one per (task, family).

    Args:
        settings: the compare settings (``tasks``, ``shared``, ``per_task``, ``per_family``).
        tasks: task names (keys of ``settings.tasks``).
        algorithms: among ``bound``, ``mbpo``, ``pets`` and the ablations
            ``bound_no_model_term``, ``bound_no_policy_term``.
        seeds: number of seeds (``first_seed .. first_seed + seeds - 1``).
        out: root directory of the runs.
        launcher: ``joblib`` (local), ``slurm`` (submitit) or ``submitit-local``
            (submitit's local executor: every run of a sweep at once).
        workers: parallel local runs (joblib's ``n_jobs``; unused by submitit).
        extra: more Hydra overrides for every run (e.g. ``device=cpu``).
        resumable_mbpo: run ``mbpo`` as ``algorithm=mbpo_resumable`` (same overrides
            file and settings), which checkpoints and resumes.
        first_seed: the first seed (e.g. 100 for tuning runs kept apart from the
            benchmark's seeds 0-4).

    Returns:
        ``(label, argv)`` pairs; ``argv`` excludes the program.

    Raises:
        CompareError: an unknown task, algorithm or launcher, or fewer than 1 seed/worker.
    """
    unknown = [t for t in tasks if t not in settings.tasks]
    if unknown:
        raise CompareError(f"unknown task {unknown[0]!r}; choose from: {', '.join(settings.tasks)}")
    bad = [a for a in algorithms if a not in FAMILY]
    if bad:
        raise CompareError(f"unknown algorithm {bad[0]!r}; choose from: {', '.join(FAMILY)}")
    if launcher not in LAUNCHERS:
        raise CompareError(f"unknown launcher {launcher!r}; choose from: {', '.join(LAUNCHERS)}")
    if seeds < 1 or workers < 1:
        raise CompareError(f"--seeds and --workers must be >= 1, got {seeds} and {workers}")
    if first_seed < 0:
        raise CompareError(f"--first-seed must be >= 0, got {first_seed}")
    commands = []
    for task in tasks:
        for family in dict.fromkeys(FAMILY[a] for a in algorithms):
            members = [a for a in algorithms if FAMILY[a] == family]
            if resumable_mbpo:
                members = [RESUMABLE_MBPO if a == "mbpo" else a for a in members]
            argv = [
                "-m",
                f"algorithm={','.join(members)}",
                f"overrides={settings.tasks[task][family]}",
                f"seed={','.join(str(s) for s in range(first_seed, first_seed + seeds))}",
                f"experiment=compare_{task}",
                f"hydra/launcher={LAUNCHERS[launcher]}",
                f"hydra.sweep.dir={out / task / family}",
                "hydra.sweep.subdir=${algorithm.name}_seed${seed}",
                "resume=auto",  # a rerun (or a requeued job) continues bound/mbpo_resumable
                *settings.shared,
                *settings.per_task.get(task, []),
                *settings.per_family.get(family, []),
                *extra,
            ]
            if launcher == "joblib":
                argv.append(f"hydra.launcher.n_jobs={workers}")
            commands.append((f"{task} {'+'.join(members)}", argv))
    return commands


def run_sweeps(
    commands: Sequence[tuple[str, list[str]]], out: pathlib.Path, one_thread: bool
) -> list[str]:
    """Runs the sweeps one after another; each one's output goes to ``out/logs/``.

    Args:
        commands: from :func:`sweep_commands`.
        out: root directory of the runs.
        one_thread: one torch thread per run (``OMP_NUM_THREADS=1`` unless set), for
            several runs at once on this machine.

    Returns:
        The labels of the sweeps that failed.
    """
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if one_thread:  # several torch processes on few cores: one thread each
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("MKL_NUM_THREADS", "1")
    failed = []
    bar = tqdm.tqdm(commands, desc=PROG, unit="sweep")
    for label, argv in bar:
        bar.set_postfix_str(label)
        log = logs / f"{label.replace(' ', '_')}.log"
        with open(log, "w") as f:
            start = time.time()
            proc = subprocess.run(
                [sys.executable, "-m", "mbrl_bound_plugin", *argv],
                stdout=f,
                stderr=subprocess.STDOUT,
                env=env,
            )
            f.write(f"\n# exit code {proc.returncode} after {time.time() - start:.0f} s\n")
        if proc.returncode != 0:
            failed.append(label)
            tqdm.tqdm.write(f"{PROG}: sweep '{label}' failed (exit {proc.returncode}); see {log}")
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of ``mbrl-bound-compare``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run bound, mbrl's MBPO and PETS on the same tasks, budgets and seeds, "
        "then write report.md, curves.png and bound_diagnostics.png.",
        epilog="Arguments after `--` are passed to every run as Hydra overrides.",
    )
    parser.add_argument("--tasks", nargs="+", help="task names (default: the settings' list)")
    parser.add_argument(
        "--algorithms",
        nargs="+",
        help=f"among {', '.join(FAMILY)} (default: the settings' list, else "
        f"{' '.join(DEFAULT_ALGORITHMS)})",
    )
    parser.add_argument("--seeds", type=int, help="number of seeds (default: from settings)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds are FIRST_SEED, FIRST_SEED+1, ..."
    )
    parser.add_argument("--workers", type=int, default=2, help="parallel local runs (joblib)")
    parser.add_argument(
        "--launcher",
        default="joblib",
        choices=list(LAUNCHERS),
        help="joblib: local, --workers at a time; slurm: one submitit job per run; "
        "submitit-local: submitit's local executor, a sweep's runs all at once, with "
        "SLURM's time limit and requeue (hydra/launcher=mbrl_bound_submitit_local)",
    )
    parser.add_argument(
        "--resumable-mbpo",
        action="store_true",
        help="run the MBPO arm as algorithm=mbpo_resumable (checkpoints and resumes) "
        "instead of mbrl's mbpo (starts over when interrupted)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("exp/compare"))
    parser.add_argument(
        "--settings",
        default="benchmark",
        help="compare settings, conf/compare/NAME.yaml: benchmark (default), v2 (benchmark "
        "v2: 5 seeds, the maze, the ablations) or quick",
    )
    parser.add_argument("--quick", action="store_true", help="tiny budgets (--settings quick)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args, extra = parser.parse_known_args(argv)
    extra = [e for e in extra if e != "--"]
    try:
        settings = load_settings("quick" if args.quick else args.settings)
        tasks = args.tasks or list(settings.default_tasks)
        algorithms = args.algorithms or list(settings.get("algorithms", DEFAULT_ALGORITHMS))
        seeds = args.seeds or int(settings.seeds)
        out = args.out.absolute()
        commands = sweep_commands(
            settings,
            tasks,
            algorithms,
            seeds,
            out,
            args.launcher,
            args.workers,
            extra,
            resumable_mbpo=args.resumable_mbpo,
            first_seed=args.first_seed,
        )
        if args.dry_run:
            for label, cmd in commands:
                print(f"# {label}\nmbrl-bound {' '.join(cmd)}")
            return 0
        out.mkdir(parents=True, exist_ok=True)
        parallel = args.launcher == "submitit-local" or args.workers > 1
        failed = run_sweeps(commands, out, args.launcher in LOCAL_LAUNCHERS and parallel)
        for path in make_report(out):
            print(f"{PROG}: wrote {path}")
    except (CompareError, ReportError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    if failed:
        print(f"{PROG}: {len(failed)} sweep(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
