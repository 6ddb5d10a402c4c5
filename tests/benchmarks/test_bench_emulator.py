"""Smoke test of benchmarks/bench_emulator.py --quick: it runs and writes the documented JSON
and table (the numbers of a smoke run mean nothing; the keys and the table shape do)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_emulator.py"


def test_quick_run_writes_json_and_table(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr
    payload = json.loads((tmp_path / "emulator.json").read_text())
    assert [row["members"] for row in payload["learning_curve"]] == [32, 48]
    outputs = payload["outputs"]
    assert "escaper_fraction" not in outputs
    for row in payload["learning_curve"]:
        assert set(row["test"]) == {"mlp", "gp"} and set(row["fresh"]["mlp"]) == set(outputs)
    assert set(payload["accuracy"]) == {"emulator", "training mean", "linear", "quadratic"}
    for model in payload["accuracy"].values():
        for item in model.values():
            assert item["scatter"] > 0 and 0 <= item["low"] <= item["high"]
    speed = payload["speed"]
    assert all(item["wall_s"] > 0 and item["cpu_s"] >= 0 for item in speed["batch"].values())
    assert set(speed["single"]) >= {"emulator", "REBOUND leapfrog", "REBOUND IAS15"}
    coverage = payload["coverage"]
    assert set(coverage["coverage"]) == {"emulator (full covariance)", "emulator (diagonal)",
                                         "simulator (synthetic likelihood)"}
    assert all(0 <= v <= 1 for row in coverage["coverage"].values() for v in row.values())
    table = (tmp_path / "emulator.md").read_text()
    assert "load average" in table and "| model | " + " | ".join(outputs) + " |" in table
    assert "| likelihood | softening | virial_ratio |" in table
