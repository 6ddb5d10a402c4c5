"""A small run of benchmarks/load_test.py: 3 concurrent browser sessions for 10 s.

Asserts what must hold at any size (speed is reported by the benchmark, never asserted):
every session draws frames, keeps its own settings (dt from its URL, its own bodies), the
server answers /liveness throughout, playing sessions add no threads beyond the shared
worker pool, and after the pages close the server's thread count returns to its warm
baseline (no frame job or periodic callback outlives its session).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from nbody_explorer.runtime.scheduler import JAX_SLOTS
from own_loop import call_on_own_thread

LOAD_TEST = Path(__file__).resolve().parents[2] / "benchmarks" / "load_test.py"


def _load_test_module():
    spec = importlib.util.spec_from_file_location("nbody_load_test", LOAD_TEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.ui
def test_three_sessions_stay_isolated_and_leave_no_threads_behind(tmp_path):
    load_test = _load_test_module()
    # On a thread of its own: the load test drives Chromium with sync_playwright (tests/own_loop.py).
    results = call_on_own_thread(load_test.run_load_test, sessions=3, duration_s=10.0, n=200, log_dir=tmp_path)

    assert results["isolation"]["ok"], results["isolation"]["problems"]
    assert results["summary"]["sessions_with_frames"] == 3, results["sessions"]
    assert results["liveness_during_play"]["failed"] == 0
    # Sessions own no threads: their frames run on the one process-wide pool, which starts at
    # most JAX_SLOTS workers on demand (frames are short jobs that never yield their slot), so
    # three playing sessions add at most that many threads to the warm baseline...
    assert results["during"]["threads_max"] <= results["warm"]["threads"] + JAX_SLOTS
    # ...and once the sessions are destroyed, none is left.
    assert results["threads_back_to_baseline"], (results["warm"], results["after"])


def test_frame_statistics_and_isolation_helpers():
    load_test = _load_test_module()
    stats = load_test.frame_stats([0.0, 1000.0, 1100.0, 1200.0, 1300.0, 1500.0], skip_s=1.0)
    assert stats["p50_ms"] == 100.0 and stats["max_ms"] == 200.0 and stats["frames"] == 6
    assert stats["fps"] == pytest.approx(4 / 0.5)
    # Distinct dt at the 3 significant digits the status line shows, for 20 sessions.
    assert len({load_test.format_dt(load_test.session_dt(i)) for i in range(20)}) == 20
