"""benchmarks/optimism_cost.py runs and reports every variant (its timings are its own business)."""

from __future__ import annotations

from conftest import load_benchmark


def test_times_each_tilt_against_sacs_updates_and_prints_the_ratio(capsys):
    bench = load_benchmark("optimism_cost")
    result = bench.main(["--rows", "64", "--sac-updates", "3", "--repeats", "1"])
    assert result["rows"] == 64 and result["sac_updates"] == 3 and result["threads"] == 1
    assert list(result["tilt_s"]) == ["mean_shift", "resample K=4", "resample K=8", "resample K=16"]
    assert result["sac_s"] > 0 and all(s > 0 for s in result["tilt_s"].values())
    out = capsys.readouterr().out
    ratio = result["tilt_s"]["resample K=16"] / result["sac_s"]
    assert f"| resample K=16 | {result['tilt_s']['resample K=16']:.2f} | {ratio:.3f} |" in out
