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
    assert [(row["num_bodies"], row["members"], row["steps"]) for row in payload["rows"]] == [(8, 8, 20)]
    for row in payload["rows"]:
        for name in ("loop", "raw_vmap", "runner", "rebound"):
            assert row[f"{name}_s"] > 0 and row[f"{name}_cpu_s"] >= 0, name
        # The ratios are the wall times of this very run, side by side.
        assert abs(row["runner_vs_raw_vmap"] - row["raw_vmap_s"] / row["runner_s"]) < 1e-9
        assert abs(row["runner_vs_loop"] - row["loop_s"] / row["runner_s"]) < 1e-9
        assert abs(row["runner_vs_rebound"] - row["rebound_s"] / row["runner_s"]) < 1e-9
    assert len(payload["load_average_before"]) == 3
    layouts = payload["sharded"]["layouts"]
    assert set(layouts) == {"1 device, 1 thread", "1 device, 2 threads", "2 devices (sharded), 1 thread"}
    assert all(layout["identical"] for layout in layouts.values())
    table = (tmp_path / "ensembles.md").read_text()
    assert "| runner / raw vmap | runner x loop |" in table and "load average" in table
    assert "runner >= 0.91x raw vmap" in table
