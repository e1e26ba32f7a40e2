"""How well named discriminator settings estimate log p/q: a known ratio, deterministic reality.

Every setting is the shipped ``conf/discriminator/mlp.yaml`` (read here, so the numbers
follow the shipped defaults) with some keys replaced; ``baseline`` is the old behaviour
(no smoothing noise, no spectral norm, no gradient penalty, no weight decay, no early
stopping) and ``defaults`` is the yaml as it ships (keys it does not name take the
constructor's defaults). Each setting fits one discriminator
``--refits`` times, warm-started, on fresh samples each time (as in a training run, where
it is refit after every model training); every setting sees the same samples, the same
initial weights and the same random streams.

Cases:

- ``known_ratio``: 2-D Gaussian transitions with a closed-form ratio. ``s ~ N(0, I)``,
  ``a ~ U(-1, 1)``, real ``s' = s + 0.1 a + N(0, 0.1^2)``, model
  ``s' = s + 0.1 a + (0.05, 0) + N(0, 0.13^2)``. After each refit: the mean absolute error
  of the logit against the true ``log p/q`` on fresh points from both p and q
  (``mae_true``), against the ratio of the densities smoothed by the training noise
  (``mae_smoothed``: each Gaussian convolved with the kernel of std ``noise_scale`` x the
  std of the real next-state change), and the Spearman rank correlation of logit and
  true ratio (``spearman``, 1 = ordering kept).
- ``deterministic``: real ``s' = f(s, a)`` (a smooth 3-D map: a damped pendulum driven
  by ``a`` and a position, ``s ~ N(0, I)``, ``a ~ U(-1, 1)``), model
  ``s' = f(s, a) + N(0, 0.05^2)``: ``KL(q || p)`` is infinite, so an unregularized
  discriminator's logits keep growing. ``kl_smoothed`` is the KL of the smoothed
  densities, what a smoothed estimator that knew ``f`` exactly would report.
- ``run`` (with ``--run DIR``): a directory written by ``mbrl-bound`` (its
  ``.hydra/config.yaml``, ``replay_buffer.npz``, ``model.pth`` and ``env_stats.pickle``);
  real transitions from its replay buffer against its model's samples at the same
  ``(s, a)``, drawn by mbrl's ``ModelEnv`` as ``algorithm.discriminator_step`` does.

Every case prints, per setting and refit, the held-out ``kl_estimate``, ``disc_accuracy``,
``disc_logloss``, the calibration columns ``exp_logit_model`` = ``E_q[exp(logit)]`` and
``exp_neglogit_real`` = ``E_p[exp(-logit)]`` (both 1 for a calibrated log-ratio) and the
Adam steps taken; then a summary per setting with the targets: known-ratio error below
0.2 nats with Spearman >= 0.95, and a deterministic-case KL estimate below 5 nats at
every refit that grows by less than 0.5 nats over the last half of the refits.

    python benchmarks/discriminator.py [--json] [--save FILE] [--run DIR] [--grid]
        [--settings NAME:KEY=VALUE,KEY=VALUE ...] [--only NAME ...] [--cases CASE ...]
        [--seed 0] [--refits 10] [--rows 5000]

e.g. ``--settings smooth:noise_scale=0.3,spectral_norm=true wd:weight_decay=1e-4`` (on top
of the shipped yaml); ``--grid`` adds the candidates the shipped defaults were chosen
from (each on top of ``baseline``); ``--only`` keeps the named settings; ``--json``
prints one JSON object ``{"cases", "settings", "seconds", "meta"}`` instead of the tables,
``--save`` writes that object to a file as well. About 7 s per setting for cases (i) and
(ii) on one CPU thread. This is a benchmark (numbers printed), not a test.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import pathlib
import platform
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import yaml
from omegaconf import OmegaConf

from mbrl_bound_plugin.models.discriminator import Discriminator

CONF = pathlib.Path(__file__).resolve().parent.parent / "conf" / "discriminator" / "mlp.yaml"
NOT_SETTINGS = ("_target_", "obs_dim", "act_dim", "device")
# the behaviour before smoothing and regularization existed
BASELINE = {
    "noise_scale": 0.0,
    "spectral_norm": False,
    "grad_penalty": 0.0,
    "weight_decay": 0.0,
    "patience": 0,
}
# candidates for the shipped defaults (with --grid), each on top of the baseline
GRID = {
    "n0.1": {"noise_scale": 0.1},
    "n0.3": {"noise_scale": 0.3},
    "n0.5": {"noise_scale": 0.5},
    "n1.0": {"noise_scale": 1.0},
    "sn": {"spectral_norm": True},
    "gp1": {"grad_penalty": 1.0},
    "gp10": {"grad_penalty": 10.0},
    "wd1e-3": {"weight_decay": 1e-3},
    "es3": {"patience": 3, "eval_every": 10},
    "n0.1+sn": {"noise_scale": 0.1, "spectral_norm": True},
    "n0.3+sn": {"noise_scale": 0.3, "spectral_norm": True},
    "n0.1+gp1": {"noise_scale": 0.1, "grad_penalty": 1.0},
    "n0.3+gp1": {"noise_scale": 0.3, "grad_penalty": 1.0},
    "n0.2": {"noise_scale": 0.2},
    "n0.2+es3": {"noise_scale": 0.2, "patience": 3, "eval_every": 10},
    "n0.3+wd1e-4": {"noise_scale": 0.3, "weight_decay": 1e-4},
    "n0.3+wd1e-3": {"noise_scale": 0.3, "weight_decay": 1e-3},
    "n0.3+es3": {"noise_scale": 0.3, "patience": 3, "eval_every": 10},
    "n0.5+es3": {"noise_scale": 0.5, "patience": 3, "eval_every": 10},
    "n0.3+sn+es3": {"noise_scale": 0.3, "spectral_norm": True, "patience": 3, "eval_every": 10},
    "sn+gp1": {"spectral_norm": True, "grad_penalty": 1.0},
    "n0.1+sn+gp1+wd1e-4+es3": {
        "noise_scale": 0.1,
        "spectral_norm": True,
        "grad_penalty": 1.0,
        "weight_decay": 1e-4,
        "patience": 3,
        "eval_every": 10,
    },
}
CASES = ("known_ratio", "deterministic", "run")
STATS = (
    "kl_estimate",
    "disc_accuracy",
    "disc_logloss",
    "exp_logit_model",
    "exp_neglogit_real",
    "disc_updates",
)
# the targets
MAX_MAE_TRUE = 0.2
MIN_SPEARMAN = 0.95
MAX_KL = 5.0
MAX_KL_GROWTH = 0.5

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def shipped_defaults(path: pathlib.Path = CONF) -> dict[str, Any]:
    """The discriminator keys of ``conf/discriminator/mlp.yaml`` (not sizes, device, target)."""
    conf = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return {k: v for k, v in conf.items() if k not in NOT_SETTINGS}


def parse_setting(spec: str) -> tuple[str, dict[str, Any]]:
    """``NAME:KEY=VALUE,KEY=VALUE`` (values as in yaml: ``true``, ``1e-4``) to name, keys."""
    name, _, body = spec.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"setting {spec!r} has no name (NAME:KEY=VALUE,...)")
    known = set(inspect.signature(Discriminator).parameters) - set(NOT_SETTINGS)
    keys: dict[str, Any] = {}
    for item in filter(None, body.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in known:
            raise argparse.ArgumentTypeError(
                f"setting {spec!r}: {item!r} is not KEY=VALUE with KEY one of {sorted(known)}"
            )
        keys[key] = yaml.safe_load(value)
    return name, keys


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    try:
        from scipy.stats import spearmanr
    except ImportError:  # numpy ranks (ties are not averaged; fine for continuous values)
        rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
        return float(np.corrcoef(rx, ry)[0, 1])
    return float(spearmanr(x, y).statistic)


def _gauss_logpdf(x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Sum over the last axis of independent Gaussian log-densities."""
    return (-0.5 * (np.log(2 * np.pi * var) + (x - mean) ** 2 / var)).sum(-1)


def _gauss_kl(mean_q, var_q, mean_p, var_p) -> float:
    """``KL(N(mean_q, var_q) || N(mean_p, var_p))`` for independent dims, summed."""
    mean_q, var_q, mean_p, var_p = map(np.asarray, (mean_q, var_q, mean_p, var_p))
    kl = 0.5 * (np.log(var_p / var_q) + (var_q + (mean_q - mean_p) ** 2) / var_p - 1.0)
    return float(kl.sum())


class KnownRatio:
    """Case (i): Gaussian next-state changes with a closed-form log-ratio."""

    name = "known_ratio"
    obs_dim, act_dim = 2, 1
    sigma_p = np.array([0.1, 0.1])
    sigma_q = np.array([0.13, 0.13])
    shift = np.array([0.05, 0.0])

    def __init__(self, rows: int, eval_rows: int, seed: int):
        self.rows, self.seed = rows, seed
        rng = np.random.default_rng([seed, 1, 999])
        # fresh points, from p (first half) and q (second half)
        obs, act, real, model = self.sample(eval_rows, rng)
        self.eval_obs = np.concatenate([obs, obs])
        self.eval_act = np.concatenate([act, act])
        self.eval_next = np.concatenate([real, model])

    def describe(self) -> dict[str, Any]:
        var_p, var_q = self.sigma_p**2, self.sigma_q**2
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "real": "s' = s + 0.1 a + N(0, sigma_p^2)",
            "model": "s' = s + 0.1 a + shift + N(0, sigma_q^2)",
            "sigma_p": self.sigma_p.tolist(),
            "sigma_q": self.sigma_q.tolist(),
            "shift": self.shift.tolist(),
            "kl_true": _gauss_kl(self.shift, var_q, 0.0, var_p),
            "rows": self.rows,
            "eval_rows": len(self.eval_obs),
        }

    def sample(self, n: int, rng: np.random.Generator) -> Data:
        obs = rng.normal(size=(n, self.obs_dim))
        act = rng.uniform(-1.0, 1.0, size=(n, self.act_dim))
        drift = obs + 0.1 * act
        real = drift + self.sigma_p * rng.normal(size=(n, self.obs_dim))
        model = drift + self.shift + self.sigma_q * rng.normal(size=(n, self.obs_dim))
        return obs, act, real, model

    def data(self, refit: int) -> Data:
        return self.sample(self.rows, np.random.default_rng([self.seed, 1, refit]))

    def log_ratio(self, obs, act, next_obs, kernel_var=0.0) -> np.ndarray:
        """``log p/q`` at the points, of the densities convolved with ``N(0, kernel_var)``."""
        delta = next_obs - obs - 0.1 * act
        var_p, var_q = self.sigma_p**2 + kernel_var, self.sigma_q**2 + kernel_var
        return _gauss_logpdf(delta, 0.0, var_p) - _gauss_logpdf(delta, self.shift, var_q)

    def extra(self, disc: Discriminator, settings: Mapping[str, Any]) -> dict[str, float]:
        with torch.no_grad():
            logit = disc(
                *(torch.as_tensor(x) for x in (self.eval_obs, self.eval_act, self.eval_next))
            )
        logit = logit.double().numpy()
        true = self.log_ratio(self.eval_obs, self.eval_act, self.eval_next)
        # the kernel in raw units: noise_scale standard deviations of the real change
        kernel_std = disc.noise_scale * disc.feature_std[-self.obs_dim :].double().numpy()
        smoothed = self.log_ratio(self.eval_obs, self.eval_act, self.eval_next, kernel_std**2)
        return {
            "mae_true": float(np.abs(logit - true).mean()),
            "mae_smoothed": float(np.abs(logit - smoothed).mean()),
            "spearman": _spearman(logit, true),
        }


class Deterministic:
    """Case (ii): deterministic real dynamics against a model with noise of std 0.05."""

    name = "deterministic"
    obs_dim, act_dim = 3, 1
    model_sigma = 0.05

    def __init__(self, rows: int, seed: int):
        self.rows, self.seed = rows, seed

    @staticmethod
    def f(obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """A damped pendulum (angle, velocity) driven by ``a``, and a position, dt = 0.1.

        The next-state changes have standard deviations of about 0.1, 0.09 and 0.06.
        """
        angle, velocity, _ = obs.T
        change = np.stack(
            [velocity, -np.sin(angle) - 0.1 * velocity + act[:, 0], np.tanh(velocity)], axis=1
        )
        return obs + 0.1 * change

    def describe(self) -> dict[str, Any]:
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "real": "s' = f(s, a), s ~ N(0, I), a ~ U(-1, 1)",
            "model": "s' = f(s, a) + N(0, 0.05^2)",
            "model_sigma": self.model_sigma,
            "kl_true": math.inf,
            "rows": self.rows,
        }

    def data(self, refit: int) -> Data:
        rng = np.random.default_rng([self.seed, 2, refit])
        obs = rng.normal(size=(self.rows, self.obs_dim))
        act = rng.uniform(-1.0, 1.0, size=(self.rows, self.act_dim))
        real = self.f(obs, act)
        model = real + self.model_sigma * rng.normal(size=real.shape)
        return obs, act, real, model

    def extra(self, disc: Discriminator, settings: Mapping[str, Any]) -> dict[str, float]:
        kernel_var = (disc.noise_scale * disc.feature_std[-self.obs_dim :].double().numpy()) ** 2
        if disc.noise_scale == 0.0:
            return {"kl_smoothed": math.inf}
        return {"kl_smoothed": _gauss_kl(0.0, kernel_var + self.model_sigma**2, 0.0, kernel_var)}


class RunDir:
    """Case (iii): the replay buffer and model of an ``mbrl-bound`` run directory."""

    name = "run"

    def __init__(self, run_dir: pathlib.Path, refits: int, seed: int):
        import mbrl.models
        import mbrl.util.common

        from mbrl_bound_plugin.env.factory import make_env

        self.run_dir = run_dir
        cfg = mbrl.util.common.load_hydra_cfg(run_dir)
        cfg.device = "cpu"
        env, term_fn, _ = make_env(cfg)
        obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
        self.obs_dim, self.act_dim = obs_shape[0], act_shape[0]
        # model.pth stores the elite indices as numpy integers: allow just those
        numpy_ints = [
            np._core.multiarray.scalar,
            np.dtype,
            type(np.dtype(np.int64)),
            type(np.dtype(np.int32)),
        ]
        with torch.serialization.safe_globals(numpy_ints):
            model = mbrl.util.common.create_one_dim_tr_model(cfg, obs_shape, act_shape, run_dir)
        dtype = np.double if cfg.algorithm.get("normalize_double_precision", False) else np.float32
        buffer = mbrl.util.common.create_replay_buffer(
            cfg, obs_shape, act_shape, obs_type=dtype, action_type=dtype, reward_type=dtype,
            load_dir=run_dir,
        )  # fmt: skip
        model_env = mbrl.models.ModelEnv(
            env, model, term_fn, None, generator=torch.Generator().manual_seed(seed)
        )
        # as algorithm.discriminator_step: distinct rows of the buffer (drawn without
        # replacement, so no row is both trained on and held out), ŝ' ~ q at their (s, a)
        ensemble = model.model
        num_models = len(getattr(ensemble, "elite_models", None) or range(len(ensemble)))
        rows = min(len(buffer), int(cfg.algorithm.get("disc_max_rows", 20_000)))
        rows -= rows % num_models
        self.rows, self.buffer_rows, self.env_name = rows, len(buffer), cfg.overrides.env
        self.datasets: list[Data] = []
        torch.manual_seed(seed)  # mbrl's random_model propagation draws from the global stream
        generator = torch.Generator().manual_seed(seed + 2)
        everything = buffer.get_all()
        for _ in range(refits):
            batch = everything[torch.randperm(len(buffer), generator=generator)[:rows].numpy()]
            obs, act = batch.obs.astype(np.float32), batch.act.astype(np.float32)
            with torch.no_grad():
                state = model_env.reset(obs, return_as_np=True)
                model_next, *_ = model_env.step(act, state, sample=True)
            self.datasets.append((obs, act, batch.next_obs, model_next))
        real_change = np.concatenate([d[2] - d[0] for d in self.datasets])
        model_err = np.concatenate([d[3] - d[2] for d in self.datasets])
        self.change_std = real_change.std(0).tolist()
        self.model_err_std = model_err.std(0).tolist()

    def describe(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "env": self.env_name,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "buffer_rows": self.buffer_rows,
            "rows": self.rows,
            "real_change_std": self.change_std,
            "model_minus_real_std": self.model_err_std,
        }

    def data(self, refit: int) -> Data:
        return self.datasets[refit]

    def extra(self, disc: Discriminator, settings: Mapping[str, Any]) -> dict[str, float]:
        return {}


def run_case(case, settings: Mapping[str, Any], refits: int, seed: int) -> list[dict[str, float]]:
    """Fits one discriminator ``refits`` times; the fit's statistics after each refit."""
    torch.manual_seed(seed)  # same initial weights for every setting
    disc = Discriminator(obs_dim=case.obs_dim, act_dim=case.act_dim, device="cpu", **settings)
    generator = torch.Generator().manual_seed(seed + 1)
    rows = []
    for refit in range(refits):
        stats = disc.fit(*case.data(refit), generator=generator)
        rows.append({**{k: stats[k] for k in STATS}, **case.extra(disc, settings)})
    return rows


def summarize(case_name: str, rows: list[dict[str, float]]) -> dict[str, Any]:
    """The last refit's numbers and whether the targets hold."""
    last = rows[-1]
    out = {k: last[k] for k in last}
    if case_name == "known_ratio":
        out["meets_target"] = bool(
            last["mae_true"] < MAX_MAE_TRUE and last["spearman"] >= MIN_SPEARMAN
        )
    else:
        kl = [r["kl_estimate"] for r in rows]
        out["kl_max"] = max(kl)
        out["kl_growth_last_half"] = kl[-1] - kl[len(kl) // 2 - 1]
        if case_name == "deterministic":
            out["meets_target"] = bool(
                out["kl_max"] < MAX_KL and out["kl_growth_last_half"] < MAX_KL_GROWTH
            )
    return out


def _jsonable(obj: Any) -> Any:
    """JSON copy: floats to 6 significant digits, non-finite ones as ``"inf"`` or ``"nan"``."""
    if isinstance(obj, float):
        return float(f"{obj:.6g}") if math.isfinite(obj) else str(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def _fmt(x: float) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if not math.isfinite(x) or abs(x) >= 1e4:
        return f"{x:.3g}"
    return f"{x:.0f}" if float(x).is_integer() and abs(x) >= 10 else f"{x:.3f}"


def print_case(name: str, info: Mapping[str, Any], results: Mapping[str, list[dict]]) -> None:
    print(f"\n## case {name}: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    for setting, rows in results.items():
        cols = list(rows[0])
        print(f"\n### {name} / {setting}\n")
        print("| refit | " + " | ".join(cols) + " |")
        print("|---:|" + "---:|" * len(cols))
        for i, row in enumerate(rows, 1):
            print(f"| {i} | " + " | ".join(_fmt(row[c]) for c in cols) + " |")


def print_summary(summaries: Mapping[str, Mapping[str, dict]]) -> None:
    print("\n## summary (last refit; KL growth: last refit minus the middle one)\n")
    head = ["setting"]
    kr, det = summaries.get("known_ratio", {}), summaries.get("deterministic", {})
    run = summaries.get("run", {})
    if kr:
        head += ["(i) mae_true", "(i) mae_smoothed", "(i) spearman", "(i) E_q e^C", "(i) E_p e^-C"]
        head += ["(i) ok"]
    if det:
        head += ["(ii) KL", "(ii) KL max", "(ii) KL growth", "(ii) acc", "(ii) E_q e^C"]
        head += ["(ii) E_p e^-C", "(ii) KL smoothed", "(ii) ok"]
    if run:
        head += ["(iii) KL", "(iii) KL max", "(iii) KL growth", "(iii) acc", "(iii) E_q e^C"]
        head += ["(iii) E_p e^-C"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for setting in kr or det or run:
        cells = [setting]
        if kr:
            s = kr[setting]
            cells += [_fmt(s[k]) for k in ("mae_true", "mae_smoothed", "spearman")]
            cells += [_fmt(s[k]) for k in ("exp_logit_model", "exp_neglogit_real", "meets_target")]
        if det:
            s = det[setting]
            cells += [_fmt(s[k]) for k in ("kl_estimate", "kl_max", "kl_growth_last_half")]
            cells += [_fmt(s[k]) for k in ("disc_accuracy", "exp_logit_model")]
            cells += [_fmt(s[k]) for k in ("exp_neglogit_real", "kl_smoothed", "meets_target")]
        if run:
            s = run[setting]
            cells += [_fmt(s[k]) for k in ("kl_estimate", "kl_max", "kl_growth_last_half")]
            cells += [_fmt(s[k]) for k in ("disc_accuracy", "exp_logit_model")]
            cells += [_fmt(s["exp_neglogit_real"])]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--save", type=pathlib.Path, default=None, help="write the JSON here")
    parser.add_argument("--run", type=pathlib.Path, default=None, help="an mbrl-bound run dir")
    parser.add_argument("--settings", type=parse_setting, nargs="+", default=[], metavar="SPEC")
    parser.add_argument("--grid", action="store_true", help="add the candidate grid")
    parser.add_argument("--only", nargs="+", default=None, help="keep these settings only")
    parser.add_argument(
        "--cases",
        nargs="+",
        default=list(CASES),
        choices=CASES,
        help="which cases (run needs --run)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refits", type=int, default=10)
    parser.add_argument("--rows", type=int, default=5000, help="rows per fit, cases (i), (ii)")
    parser.add_argument("--eval-rows", type=int, default=2000, help="case (i), per class")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.cases == ["run"] and args.run is None:
        parser.error("case run needs --run DIR")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    shipped = shipped_defaults()
    settings = {"baseline": {**shipped, **BASELINE}, "defaults": dict(shipped)}
    for name, keys in GRID.items() if args.grid else []:
        settings[name] = {**shipped, **BASELINE, **keys}
    for name, keys in args.settings:
        settings[name] = {**shipped, **keys}
    if args.only:
        settings = {k: v for k, v in settings.items() if k in args.only}

    cases: list[Any] = []
    if "known_ratio" in args.cases:
        cases.append(KnownRatio(args.rows, args.eval_rows, args.seed))
    if "deterministic" in args.cases:
        cases.append(Deterministic(args.rows, args.seed))
    if "run" in args.cases and args.run is not None:
        cases.append(RunDir(args.run, args.refits, args.seed))

    meta = {
        "machine": platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "refits": args.refits,
    }
    out: dict[str, Any] = {"cases": {}, "settings": settings, "meta": meta}
    emit: Callable[..., None] = (lambda *a, **k: None) if args.json else print
    emit("# " + ", ".join(f"{k} {v}" for k, v in meta.items()))
    emit(f"# shipped defaults ({CONF.relative_to(CONF.parents[2])}): {shipped}")
    for case in cases:
        results = {
            name: run_case(case, kwargs, args.refits, args.seed)
            for name, kwargs in settings.items()
        }
        summary = {name: summarize(case.name, rows) for name, rows in results.items()}
        out["cases"][case.name] = {"info": case.describe(), "results": results, "summary": summary}
        if not args.json:
            print_case(case.name, case.describe(), results)
    out["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(_jsonable(out), indent=1, default=str)
    if args.save is not None:
        args.save.write_text(text + "\n")
    if args.json:
        print(text)
    else:
        print_summary({name: c["summary"] for name, c in out["cases"].items()})
        print(f"\n# {out['seconds']} s")
    return out


if __name__ == "__main__":
    main()
