"""Shared fixtures: float64 everywhere (the documented call, as the CLI and the app make it)
and an explicit PRNG key."""

import os
import tempfile

# One JAX persistent compilation cache for the whole run, shared by both xdist workers and every
# subprocess a test starts (the CLI, README pastes, benchmark quick runs, the docs build): they
# compile the same kernels again and again. Measured on `nbody run --preset plummer --n 64`:
# 7.3 s of CPU cold, 3.1 s with the cache warm. A fresh directory per run (the controller sets it
# before the workers start; they inherit it), unless the caller chose one. Every compile is kept
# (JAX's defaults keep only those over 1 s).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="nbody-tests-jax-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402 - after the cache settings above
import pytest  # noqa: E402

import nbody_core  # noqa: E402

# A plugin may have imported JAX before this file: its configuration read the environment then.
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
jax.config.update("jax_persistent_cache_min_entry_size_bytes",
                  int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))
nbody_core.enable_float64()

# A module whose tests share a fixture it defines runs on one xdist worker (tests/xdist_grouping.py).
from xdist_grouping import pytest_collection_modifyitems  # noqa: E402, F401 - a hook, found by name


@pytest.fixture
def key():
    return jax.random.key(20261125)


# ---------------------------------------------------------------- every test's duration
# ``--durations=30`` prints the slowest thirty; the whole list (setup + call + teardown per
# test, and which xdist worker ran it) goes to test-results/durations.json at the end of the
# run, so the tiers and the CI time can be planned from a real run (the controller sees every
# worker's reports).
_DURATIONS: dict[str, dict] = {}
#: The failed first tries of rerun browser tests (tests/ui/conftest.py gives them one rerun).
_RERUN_REPORTS: list = []


def pytest_runtest_logreport(report):
    entry = _DURATIONS.setdefault(report.nodeid, {"seconds": 0.0, "worker": None, "outcome": "passed"})
    entry["seconds"] += report.duration
    entry["worker"] = getattr(report, "node", None) and report.node.gateway.id
    if report.failed:
        entry["outcome"] = "failed"
    if report.outcome == "rerun":  # pytest-rerunfailures
        _RERUN_REPORTS.append(report)


def pytest_terminal_summary(terminalreporter):
    """How each rerun browser test failed at its first try (a test that only passes on its
    second try is still a finding; here, not in tests/ui/conftest.py, because under xdist the
    controller, which prints the summary, loads only this conftest); then seconds of test time
    per xdist worker, browser tests apart: the balance of the run."""
    if _RERUN_REPORTS:
        terminalreporter.section("first tries of rerun browser tests")
        for report in _RERUN_REPORTS:
            terminalreporter.write_line(f"--- {report.nodeid}")
            terminalreporter.write_line(report.longreprtext[-4000:])
    if hasattr(terminalreporter.config, "workerinput") or len(_DURATIONS) < 100:
        return
    totals: dict[str, list[float]] = {}
    for nodeid, entry in _DURATIONS.items():
        row = totals.setdefault(str(entry["worker"]), [0.0, 0.0])
        row[0] += entry["seconds"]
        row[1] += entry["seconds"] if "/ui/" in nodeid else 0.0
    terminalreporter.section("test time per worker")
    for worker, (seconds, browser) in sorted(totals.items()):
        terminalreporter.write_line(f"{worker}: {seconds:.0f} s of tests, {browser:.0f} s of them browser tests")


def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput") or len(_DURATIONS) < 100:
        return  # an xdist worker (the controller writes the file), or a small run (the Docker check's)
    import json
    from pathlib import Path

    path = Path(session.config.rootpath) / "test-results" / "durations.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = dict(sorted(_DURATIONS.items(), key=lambda item: -item[1]["seconds"]))
    path.write_text(json.dumps(ordered, indent=1))
