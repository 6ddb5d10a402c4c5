"""The pool's fairness by measured cost (app/runtime/scheduler.py).

Deterministic: the pool's clock is a fake one that only the job holding the slot advances
(each piece "costs" what it adds), so the order of pieces does not depend on the machine.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from nbody_explorer.runtime import scheduler
from nbody_explorer.runtime.scheduler import FairPool, Job, slots_from_environment


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def _wait_until(condition, timeout_s: float = 10.0, msg=lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met in time {msg()}"
        threading.Event().wait(0.002)


def _backlogged_sessions(charge: str, *, heavy_piece: float = 10.0, light_piece: float = 1.0,
                         budget: float = 600.0) -> tuple[dict[str, float], list[str]]:
    """One slot; a heavy session whose pieces cost 10x a light one's and 3 light sessions,
    all always wanting the slot. Returns the slot time each got and the order of pieces."""
    clock = FakeClock()
    pool = FairPool(slots=1, clock=clock, charge=charge)
    gate = threading.Event()
    used: dict[str, float] = {}
    order: list[str] = []

    def work(name: str, cost: float):
        def fn(job):
            gate.wait(10)
            while clock.now < budget:
                clock.advance(cost)  # one piece, run while holding the only slot
                used[name] = used.get(name, 0.0) + cost
                order.append(name)
                job.checkpoint()
        return fn

    jobs = [pool.submit(Job(work("heavy", heavy_piece), session="heavy"))]
    _wait_until(lambda: pool.busy() == 1)
    jobs += [pool.submit(Job(work(f"light{i}", light_piece), session=f"light{i}")) for i in range(3)]
    gate.set()
    for job in jobs:
        assert job.finished.wait(30) and job.error is None
    return used, order


def test_each_backlogged_session_gets_an_equal_share_of_slot_time_whatever_its_pieces_cost():
    used, order = _backlogged_sessions("time")
    total = sum(used.values())
    for name, seconds in used.items():
        # Equal shares (1/4 each) up to one heavy piece (10 of 600) either way.
        assert abs(seconds / total - 0.25) <= 10.0 / total + 1e-9, used
    # The heavy session runs 10x fewer pieces, one at a time between the light ones' turns.
    assert order.count("light0") >= 9 * order.count("heavy")


def test_charging_by_turn_gives_the_heavy_session_ten_times_the_slot_time():
    """The round robin of earlier releases (every piece costs the same): the heavy session
    takes ~10/13 of the slot, which is what starved light sessions (issue 26, item 4)."""
    used, _order = _backlogged_sessions("turn")
    light = sum(used[f"light{i}"] for i in range(3)) / 3
    assert used["heavy"] / light == pytest.approx(10.0, rel=0.15), used


def test_a_light_job_waits_at_most_one_heavy_piece():
    clock = FakeClock()
    pool = FairPool(slots=1, clock=clock)
    pieces, light_started_after = [], []
    submit_light, stop = threading.Event(), threading.Event()

    def heavy(job):
        while not stop.is_set():
            clock.advance(10.0)
            pieces.append(1)
            if len(pieces) == 5:
                submit_light.set()
                _wait_until(lambda: pool.waiting() == 1)  # the light job queued mid-piece
            job.checkpoint()

    def light(job):
        light_started_after.append(len(pieces))
        clock.advance(0.5)
        stop.set()

    heavy_job = pool.submit(Job(heavy, session="heavy"))
    assert submit_light.wait(10)
    light_job = pool.submit(Job(light, session="light"))
    assert light_job.finished.wait(10) and heavy_job.finished.wait(10)
    assert light_started_after == [5]  # at the heavy job's very next checkpoint


def test_a_session_holds_at_most_one_slot_and_its_second_job_waits_behind_its_first():
    pool = FairPool(slots=2)
    gates = {name: threading.Event() for name in ("a1", "a2", "b1")}
    started: list[str] = []

    def work(name):
        def fn(job):
            started.append(name)
            gates[name].wait(10)
        return fn

    a1 = pool.submit(Job(work("a1"), session="a"))
    a2 = pool.submit(Job(work("a2"), session="a"))
    _wait_until(lambda: started == ["a1"])
    assert pool.busy() == 1 and pool.waiting() == 1  # a free slot, but not for a's second job
    b1 = pool.submit(Job(work("b1"), session="b"))
    _wait_until(lambda: "b1" in started)
    assert pool.busy() == 2 and a2.position == 1
    gates["a1"].set()
    _wait_until(lambda: "a2" in started)
    for gate in gates.values():
        gate.set()
    assert all(job.finished.wait(10) for job in (a1, a2, b1))
    assert pool.busy() == 0


def test_a_job_that_gives_its_slot_up_keeps_its_place_before_its_sessions_later_jobs():
    clock = FakeClock()
    pool = FairPool(slots=1, clock=clock)
    order: list[str] = []
    go = threading.Event()

    def long_job(job):
        for piece in range(3):
            order.append(f"long{piece}")
            if piece == 0:
                assert go.wait(10)
            clock.advance(1.0)
            job.checkpoint()

    def one(name):
        def fn(job):
            order.append(name)
            clock.advance(0.1)
        return fn

    long = pool.submit(Job(long_job, session="a"))
    _wait_until(lambda: order == ["long0"])
    later = pool.submit(Job(one("a-later"), session="a"))
    other = pool.submit(Job(one("b"), session="b"))
    go.set()
    assert all(job.finished.wait(10) for job in (long, later, other))
    assert order == ["long0", "b", "long1", "long2", "a-later"]


def test_health_reports_the_queue_and_the_age_of_the_running_piece():
    clock = FakeClock()
    pool = FairPool(slots=1, clock=clock)
    release = threading.Event()
    running = pool.submit(Job(lambda job: release.wait(10), session="a", label="Simulate"))
    _wait_until(lambda: pool.busy() == 1)
    queued = [pool.submit(Job(lambda job: None, session="b", label="Forces")) for _ in range(2)]
    clock.advance(2.5)
    report = pool.health()
    assert report["slots"] == 1 and report["busy"] == 1 and report["waiting"] == 2
    assert report["oldest_piece_s"] == pytest.approx(2.5)
    by_label = {s["label"]: s for s in report["sessions"]}
    assert by_label["Simulate"]["running"] and by_label["Simulate"]["piece_age_s"] == pytest.approx(2.5)
    assert by_label["Forces"]["waiting"] == 2 and not by_label["Forces"]["running"]
    assert all(s["session"].startswith("session ") for s in report["sessions"])  # never the session's id
    release.set()
    assert all(job.finished.wait(10) for job in [running, *queued])
    assert pool.health()["oldest_piece_s"] == 0.0 and pool.health()["waiting"] == 0


def test_a_forgotten_session_leaves_the_pool_once_its_jobs_are_done():
    pool = FairPool(slots=1)
    job = pool.submit(Job(lambda job: None, session="gone"))
    assert job.finished.wait(10)
    assert len(pool.health()["sessions"]) == 1
    pool.forget("gone")
    assert pool.health()["sessions"] == []


def test_slots_come_from_the_environment_with_a_clear_error():
    cores = len(os.sched_getaffinity(0))
    assert slots_from_environment({}) == scheduler.DEFAULT_JAX_SLOTS == cores  # the machine's cores
    assert slots_from_environment({"NBODY_JAX_SLOTS": " 4 "}) == 4
    for bad in ("0", "-1", "two", "1.5", "1000"):
        with pytest.raises(ValueError, match="NBODY_JAX_SLOTS"):
            slots_from_environment({"NBODY_JAX_SLOTS": bad})
    with pytest.raises(ValueError, match="slots"):
        FairPool(slots=0)


def test_one_long_piece_does_not_make_a_session_long():
    """A light view's first compile is one long piece: its frames must still get the slot
    kept for short work (the load test's light sessions waited for it for seconds when one
    long piece made a session long)."""
    clock = FakeClock()
    pool = FairPool(slots=2, clock=clock)
    release = threading.Event()

    def long_job(job):
        for _ in range(2):
            clock.advance(0.1)
            job.checkpoint()
        release.wait(60)

    heavy = pool.submit(Job(long_job, session="heavy"))  # long after two pieces, then holds its slot
    _wait_until(lambda: pool.health()["sessions"][0]["pieces"] == 2)
    compiled = pool.submit(Job(lambda job: clock.advance(2.0), session="light"))  # a first compile
    assert compiled.finished.wait(10)
    short = pool.submit(Job(lambda job: clock.advance(0.01), session="short"))  # short work about
    assert short.finished.wait(10)
    frame = pool.submit(Job(lambda job: clock.advance(0.01), session="light"))  # its first frame
    assert frame.finished.wait(10)  # the kept slot, although its only piece so far was long
    release.set()
    assert heavy.finished.wait(10)


def test_long_sessions_leave_one_slot_to_short_work_while_it_is_about():
    """Two slots, two sessions in pieces of 100 ms and a light one asking for 10 ms jobs: the
    second long session waits while the light one is about, so a light job never waits for
    a long piece; once the light one has asked for nothing for RESERVE_HOLD_S, it computes."""
    clock = FakeClock()
    pool = FairPool(slots=2, clock=clock)
    done = threading.Event()
    ran: list[str] = []

    def long_work(name):
        def fn(job):
            for _ in range(3):  # pieces of 100 ms (a long session after two of them)
                clock.advance(0.1)
                ran.append(name)
                job.checkpoint()
            done.wait(10)
        return fn

    first = pool.submit(Job(long_work("long-a"), session="a"))
    _wait_until(lambda: ran.count("long-a") == 3)  # (one job at a time advances the fake clock)
    light = pool.submit(Job(lambda job: clock.advance(0.01), session="light"))  # short work, asked now
    assert light.finished.wait(10)
    second = pool.submit(Job(long_work("long-b"), session="b"))  # b is new: short until two long pieces
    _wait_until(lambda: ran.count("long-b") >= 2)
    _wait_until(lambda: pool.busy() == 1 and pool.waiting() == 1, msg=lambda: (pool.health(), ran, clock.now))  # b, long now, gave the kept slot up
    quick = pool.submit(Job(lambda job: ran.append("light"), session="light"))
    assert quick.finished.wait(10)  # at once: a slot was kept for it
    assert ran.count("long-b") == 2
    clock.advance(scheduler.RESERVE_HOLD_S + 0.01)  # the light session has been quiet since
    _wait_until(lambda: ran.count("long-b") == 3)  # b gets the kept slot back
    done.set()
    assert first.finished.wait(10) and second.finished.wait(10)
