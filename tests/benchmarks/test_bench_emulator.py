"""Smoke test of benchmarks/bench_emulator.py --quick: it runs and writes the documented JSON
and table (the numbers of a smoke run mean nothing; the keys and the table shape do)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_emulator.py"


def test_quick_run_writes_json_and_table(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    payload = json.loads((tmp_path / "emulator.json").read_text())
    assert [row["members"] for row in payload["learning_curve"]] == [32, 48]
    outputs = payload["outputs"]
    for row in payload["learning_curve"]:
        assert set(row["test"]) == {"mlp", "gp"} and set(row["fresh"]["mlp"]) == set(outputs)
    for item in payload["noise_floor"].values():
        assert item["scatter"] > 0 and item["error_of_mean"] >= 0
    speed = payload["speed"]
    assert speed["speedup"] == speed["emulator_predictions_per_s"] / speed["simulator_runs_per_s"]
    inference = payload["inference"]
    assert set(inference["inputs"]) == {"virial_ratio"} and inference["speedup"] > 0
    table = (tmp_path / "emulator.md").read_text()
    assert "| members | model | " + " | ".join(outputs) + " |" in table
    assert "| input | emulator mean ± sd | simulator mean ± sd |" in table
