"""Smoke test of benchmarks/bench_forces.py --quick: it runs and writes the documented JSON."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_forces.py"


def test_quick_run_writes_json_and_table(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads((tmp_path / "forces.json").read_text())
    assert payload["num_bodies"] == [32, 64]
    assert {"numpy_loop", "numpy_vectorized", "jax_autodiff", "jax_analytic"} <= set(payload["methods"])
    assert payload["versions"]["jax"] and payload["machine"]["cores"] >= 1 and payload["date_utc"]
    records = {(r["method"], r["num_bodies"]): r for r in payload["records"]}
    assert len(records) == len(payload["methods"]) * 2
    for (method, n), record in records.items():
        assert record["run_ms"] > 0
        assert payload["pair_interactions_per_second"][f"{method}/{n}"] > 0
        if method.startswith("jax_"):
            assert record["compile_ms"] is not None  # compile time reported apart
        # Ratios are measured against the loop in the same run (1.0 for the loop itself).
        assert record["speedup_vs_numpy_loop"] > 0
    assert records["numpy_loop", 64]["speedup_vs_numpy_loop"] == 1.0
    table = (tmp_path / "forces.md").read_text()
    assert "| method | N | run ms (steady) | pair interactions/s |" in table
