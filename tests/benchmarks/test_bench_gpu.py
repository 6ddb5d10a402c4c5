"""benchmarks/bench_gpu.py: says "no GPU" and exits 0 on the CPU; a --quick smoke run works."""

import importlib.util
import json
import sys
from pathlib import Path

import jax

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_it_says_so_and_exits_0(tmp_path, capsys):
    assert jax.default_backend() == "cpu"  # CI has no GPU
    assert _bench().main(["--out-dir", str(tmp_path)]) == 0
    assert "no GPU" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


def test_quick_cpu_smoke_run_writes_every_group(tmp_path):
    # Tiny sizes, Pallas in its interpreter: checks the script end to end, measures nothing.
    assert _bench().main(["--quick", "--allow-cpu", "--repeats", "1", "--out-dir", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "gpu.json").read_text())["rows"]
    groups = {row["group"] for row in rows}
    assert groups == {"forces", "leapfrog", "gradient", "ensemble"}
    assert not [row for row in rows if row.get("error")]
    names = {row["name"] for row in rows if row["group"] == "forces"}
    assert {"analytic", "tiled", "pallas", "auto"} <= names
    auto = [row for row in rows if row["name"] == "auto" and row["group"] == "forces"]
    # The CPU table's choice when gradients may be taken: the tiled kernel's forward.
    assert all(row["picked"] == "tiled_custom_vjp" for row in auto)
    table = (tmp_path / "gpu.md").read_text()
    assert "QUICK smoke run" in table and "| forces | pallas |" in table
