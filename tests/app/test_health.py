"""The health endpoint's answer (app/runtime/health.py): a stalled piece makes it unhealthy."""

from __future__ import annotations

import json
import threading
import time

import pytest

from nbody_explorer.runtime.health import ROUTES, HealthHandler, health_report, piece_bound_from_environment
from nbody_explorer.runtime.scheduler import FairPool, Job


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.002)


@pytest.fixture
def stalled_pool():
    """A one-slot pool on a fake clock: session "heavy" runs one piece, "light" waits twice."""
    clock = FakeClock()
    pool = FairPool(slots=1, clock=clock)
    release = threading.Event()
    jobs = [pool.submit(Job(lambda job: release.wait(10), session="heavy", label="Simulate"))]
    _wait_until(lambda: pool.busy() == 1)
    jobs += [pool.submit(Job(lambda job: None, session="light", label="Simulate")) for _ in range(2)]
    yield pool, clock
    release.set()
    assert all(job.finished.wait(10) for job in jobs)


def test_a_piece_that_overruns_its_bound_makes_the_server_unhealthy(stalled_pool):
    pool, clock = stalled_pool
    clock.now += 0.5
    status, body = health_report(pool=pool, live_sessions=2, bound_s=1.0)
    assert status == 200 and body["status"] == "healthy" and "reason" not in body
    assert body["oldest_piece_s"] == pytest.approx(0.5)
    assert body["queue"]["total"] == 2 and sorted(body["queue"]["per_session"].values()) == [0, 2]
    assert body["slots"] == 1 and body["busy"] == 1 and body["sessions"] == 2
    assert body["rss_mib"] is None or body["rss_mib"] > 0

    clock.now += 1.0  # the running piece is now 1.5 s old: past its 1 s bound
    status, body = health_report(pool=pool, live_sessions=2, bound_s=1.0)
    assert status == 503 and body["status"] == "unhealthy"
    heavy = next(s for s in body["compute"] if s["running"])
    assert body["reason"] == f"{heavy['session']} (Simulate) has run one piece of work for 1.5 s; the bound is 1 s"
    json.dumps(body)  # all of it is JSON


def test_an_idle_pool_is_healthy():
    status, body = health_report(pool=FairPool(slots=2), live_sessions=0, bound_s=1.0)
    assert status == 200 and body["status"] == "healthy"
    assert body["queue"] == {"total": 0, "per_session": {}} and body["oldest_piece_s"] == 0.0


def test_the_bound_comes_from_the_environment_with_a_clear_error():
    assert piece_bound_from_environment({}) == 5.0
    assert piece_bound_from_environment({"NBODY_PIECE_BOUND_S": "0.25"}) == 0.25
    for bad in ("0", "-1", "nan", "inf", "soon", "7200"):
        with pytest.raises(ValueError, match="NBODY_PIECE_BOUND_S"):
            piece_bound_from_environment({"NBODY_PIECE_BOUND_S": bad})


def test_the_plugin_serves_the_handler_at_health():
    assert ROUTES == [(r"/health", HealthHandler)]
