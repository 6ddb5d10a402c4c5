"""Smoke test of benchmarks/bench_performance.py --quick: it runs and writes JSON + table."""

import importlib.util
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
    assert ("| group | row | N | result | vs REBOUND (wall) | vs REBOUND (CPU time) | goal (issue 13) "
            "| compile s | load |") in table
    assert "figure-eight scan, tiled" in table


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_performance", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_goal_column_states_the_issue_13_goals():
    goal = _bench_module()._goal
    forces = {"group": "force throughput", "name": "auto float64", "n": 1000,
              "vs_rebound": 1.31, "vs_rebound_cpu": 1.2}
    assert goal(forces) == "≥ 1× REBOUND: met (1.31× wall, 1.20× CPU time)"
    assert "missed" in goal({**forces, "n": 4096, "vs_rebound": 0.9})
    assert goal({**forces, "n": 64}) == "" and goal({**forces, "name": "tiled float64"}) == ""
    leapfrog = {"group": "leapfrog run", "name": "jax simulate auto", "n": 1000, "vs_rebound": 1.1,
                "vs_rebound_cpu": 0.95}
    assert goal(leapfrog) == "≥ 1× REBOUND: met (1.10× wall, 0.95× CPU time)"
    gradient = {"group": "gradient", "name": "grad log-likelihood / forward, auto", "ratio": 4.2,
                "n": 64, "steps": 200}
    assert goal(gradient) == "≤ 4× forward: missed (4.20×)"
    assert goal({**gradient, "n": 8, "steps": 20}) == ""  # quick sizes: no goal
    ensemble = {"group": "ensemble", "name": "jax.vmap(simulate), auto, chunks of 16",
                "simulations_per_s": 160.0, "simulations_per_cpu_s": 180.0, "n": 64, "steps": 500}
    assert goal(ensemble) == "≥ 150 sims/s: met (160 sims/s wall, 180 sims/s per CPU-s)"
    assert goal({**ensemble, "name": "jax.vmap(simulate), tiled, chunks of 16"}) == ""
