"""The tuning table: bound's variants on the tuning seeds, side by side.

    python benchmarks/tuning.py exp/tune/ip_default exp/tune/ip_lam0.01 ... [--baseline ip_default]
        [--plot tuning.png]

Each folder holds the runs of one variant (one ``mbrl-bound-compare ... --out FOLDER --
KEY=VALUE`` call, e.g. seeds 100-102); the folder's name is the variant's name and the
overrides it adds to the shipped defaults are read from its runs' ``.hydra/overrides.yaml``
(a folder of another algorithm, such as MBPO for reference, shows its ``algorithm=``).
Prints a markdown table per task: per variant, the seeds, the final return and the AUC
(mean return over a span common to every run of the task, as ``mbrl-bound-report``
computes it) per seed and their mean, and per seed the AUC difference to the baseline
variant (same seed: same initial exploration data).

With ``--plot FILE`` it also draws each task's AUCs as a PNG: a row per variant, a dot
per seed (one color per seed across rows) and a bar at the variant's mean, so that how
much the seeds differ can be set against how much the variants do.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
import yaml
from matplotlib.figure import Figure

from mbrl_bound_plugin.report import area_under_curves, final_return, find_runs

# what every compare run passes, not what a variant changes (another algorithm than
# bound, e.g. MBPO as a reference, is shown)
_COMMON = ("algorithm=bound",)
_COMMON_PREFIXES = (
    "overrides=",
    "seed=",
    "experiment=",
    "resume=",
    "hydra",
    "++",
)


def variant_overrides(folder: pathlib.Path) -> str:
    """The overrides a variant adds (from one of its runs' ``.hydra/overrides.yaml``)."""
    for path in sorted(folder.rglob(".hydra/overrides.yaml")):
        overrides = yaml.safe_load(path.read_text()) or []
        own = [o for o in overrides if o not in _COMMON and not o.startswith(_COMMON_PREFIXES)]
        return " ".join(own) or "(defaults)"
    return "?"


Table = dict[str, dict[int, tuple[float, float]]]  # variant -> seed -> (final return, AUC)


def tables(folders: list[pathlib.Path]) -> dict[str, tuple[float, float, Table]]:
    """Per task: the AUC span (first and last env step) and each variant's seeds."""
    runs = {f.name: find_runs(f) for f in folders}
    out = {}
    for task in sorted({r.task for rs in runs.values() for r in rs}):
        everything = [(name, r) for name, rs in runs.items() for r in rs if r.task == task]
        aucs, lo, hi = area_under_curves([r for _, r in everything])
        by_variant: Table = {}
        for (name, r), auc in zip(everything, aucs, strict=True):
            by_variant.setdefault(name, {})[r.seed] = (final_return(r), float(auc))
        out[task] = (lo, hi, by_variant)
    return out


def plot(tasks: dict[str, tuple[float, float, Table]], names: list[str], path: pathlib.Path):
    """Writes the AUC per seed and variant (dots) and per variant (bars) of each task."""
    fig = Figure(figsize=(7.0, 1.0 + (0.8 + 0.45 * len(names)) * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), 1, squeeze=False).ravel()
    for ax, (task, (lo, hi, by_variant)) in zip(axes, tasks.items(), strict=True):
        rows = [n for n in names if by_variant.get(n)]
        seeds = sorted({s for n in rows for s in by_variant[n]})
        for i, seed in enumerate(seeds):
            ys = [y for y, n in enumerate(rows) if seed in by_variant[n]]
            xs = [by_variant[rows[y]][seed][1] for y in ys]
            ax.plot(xs, ys, "o", color=f"C{i % 10}", linestyle="none", label=f"seed {seed}")
        for y, name in enumerate(rows):
            mean = np.mean([auc for _, auc in by_variant[name].values()])
            ax.plot([mean, mean], [y - 0.3, y + 0.3], color="black", linewidth=2)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_ylim(len(rows) - 0.5, -0.5)  # the first variant on top
        ax.set_xlabel(f"AUC: mean return over env steps {lo:g}-{hi:g} (bar: mean over seeds)")
        ax.set_title(task)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    """Prints the tuning tables of the variant folders given (and plots them with --plot)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=pathlib.Path)
    parser.add_argument("--baseline", help="variant the differences are taken to (default: first)")
    parser.add_argument("--plot", type=pathlib.Path, help="also write the AUCs as this PNG")
    args = parser.parse_args(argv)
    names = [f.name for f in args.folders]
    baseline = args.baseline or names[0]
    if baseline not in names:
        parser.error(f"--baseline {baseline} is not one of the folders: {', '.join(names)}")
    tasks = tables(args.folders)
    for task, (lo, hi, by_variant) in tasks.items():
        base = by_variant.get(baseline, {})
        print(f"\n## {task}\n\nAUC: mean return over env steps {lo:g}-{hi:g}.\n")
        print(
            "| variant | overrides | seeds | final return per seed | mean | AUC per seed | "
            "mean | AUC - baseline per seed | mean |"
        )
        print("|---|---|---:|---|---:|---|---:|---|---:|")
        for name in names:
            seeds = sorted(by_variant.get(name, {}))
            if not seeds:
                continue
            finals = [by_variant[name][s][0] for s in seeds]
            area = [by_variant[name][s][1] for s in seeds]
            diffs = [by_variant[name][s][1] - base[s][1] for s in seeds if s in base]
            print(
                f"| {name} | `{variant_overrides(args.folders[names.index(name)])}` | "
                f"{len(seeds)} | {' '.join(f'{x:.1f}' for x in finals)} | {np.mean(finals):.1f} | "
                f"{' '.join(f'{x:.1f}' for x in area)} | {np.mean(area):.1f} | "
                f"{' '.join(f'{x:+.1f}' for x in diffs)} | "
                f"{np.mean(diffs) if diffs else float('nan'):+.1f} |"
            )
    if args.plot and tasks:
        plot(tasks, names, args.plot)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
