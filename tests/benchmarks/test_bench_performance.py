"""Smoke test of benchmarks/bench_performance.py --quick: it runs and writes JSON + table."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_performance.py"


def test_quick_run_writes_json_and_table(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", "small", "--repeats", "1",
         "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads((tmp_path / "performance.json").read_text())
    assert payload["quick"] and payload["versions"]["jax"] and payload["date"]
    assert payload["machine"]["cores"] >= 1
    names = {row["name"] for row in payload["rows"]}
    assert names == {
        "figure-eight scan, analytic", "figure-eight scan, tiled",
        "advance(state, 1) per call, analytic", "advance(state, 1) per call, tiled",
        "figure-eight scan, auto", "advance(state, 1) per call, auto",
    }
    for row in payload["rows"]:
        assert row["seconds"] > 0 and row["compile_s"] is not None  # compile reported apart
    table = (tmp_path / "performance.md").read_text()
    assert "| group | row | N | result | vs REBOUND (wall) | vs REBOUND (CPU time) | compile s | load |" in table
    assert "figure-eight scan, tiled" in table
