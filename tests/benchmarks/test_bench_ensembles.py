"""Smoke test of benchmarks/bench_ensembles.py --quick: it runs and writes the documented JSON."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_ensembles.py"


def test_quick_run_writes_json_and_table(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads((tmp_path / "ensembles.json").read_text())
    assert [row["members"] for row in payload["rows"]] == [1, 4]
    for row in payload["rows"]:
        assert row["vmap_run_s"] > 0 and row["loop_seconds_per_member"] > 0
        assert row["vmap_compile_s"] >= 0 and row["loop_compile_s"] >= 0  # compile reported apart
        assert abs(row["ratio"] - row["loop_run_s"] / row["vmap_run_s"]) < 1e-9 * row["ratio"]
    # --quick times the loop on 2 members: M = 4 is extrapolated, and says so.
    assert [row["loop_extrapolated"] for row in payload["rows"]] == [False, True]
    sharded = payload["sharded"]
    assert sharded["devices_available"] == 4 and sharded["identical"] is True
    assert sharded["1"]["num_chunks"] == 4 and sharded["4"]["num_chunks"] == 1
    table = (tmp_path / "ensembles.md").read_text()
    assert "| members M | vmap sims/s | loop sims/s | vmap speedup |" in table
    assert "results bit-identical: yes" in table
