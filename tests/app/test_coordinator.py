"""Several processes, one class (app/runtime/coordinator.py): the session cap, the compute slots
and the waiting line hold across processes sharing a runtime directory, and a crashed process's
share comes back.

Two :class:`Coordinator` objects in one test process stand for two server processes (each has its
own key, file handles and ``flock``); the crash test uses a real second process killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from nbody_explorer.runtime.admission import ADDRESS_FULL, FULL, SessionRegistry
from nbody_explorer.runtime.coordinator import Coordinator, SlotGate, install_from_environment
from nbody_explorer.runtime.scheduler import FairPool, Job


def _wait_for(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def two_processes(tmp_path):
    first, second = Coordinator(tmp_path).start(), Coordinator(tmp_path).start()  # leases renewed every second
    yield first, second
    for coordinator in (first, second):
        coordinator.close()


def _registry(coordinator):
    registry = SessionRegistry(trim_delay=3600)
    registry.coordinator = coordinator
    return registry


def _viewer(registry, session_id, cap, *, address="10.0.0.1", per_address=0):
    """Admit and confirm a session whose browser is connected (as serve_session does)."""
    answer = registry.admit(session_id, cap, address=address, per_address=per_address, connections=lambda: 1)
    return registry.confirm(session_id, cap, per_address=per_address) if answer else answer


def test_the_session_cap_counts_the_viewers_of_every_process(two_processes):
    first, second = map(_registry, two_processes)
    assert _viewer(first, "a1", 3, address="10.0.0.1")
    assert _viewer(first, "a2", 3, address="10.0.0.2")
    assert _viewer(second, "b1", 3, address="10.0.0.3")
    refused = _viewer(second, "b2", 3, address="10.0.0.4")
    assert not refused and refused.reason == FULL and refused.live == 3
    assert first.live == second.live == 3
    first.release("a1")
    assert second.live == 2
    assert _viewer(second, "b2", 3, address="10.0.0.4")


def test_the_per_address_cap_counts_across_processes(two_processes):
    first, second = map(_registry, two_processes)
    assert _viewer(first, "a1", 10, address="10.0.0.9", per_address=2)
    assert _viewer(second, "b1", 10, address="10.0.0.9", per_address=2)
    refused = _viewer(second, "b2", 10, address="10.0.0.9", per_address=2)
    assert not refused and refused.reason == ADDRESS_FULL
    assert _viewer(second, "b3", 10, address="10.0.0.10", per_address=2)


def test_concurrent_admissions_in_two_processes_never_pass_the_cap(two_processes):
    registries = list(map(_registry, two_processes))
    admitted = []

    def ask(registry, name):
        for i in range(20):
            if _viewer(registry, f"{name}{i}", 7, address=f"10.1.{name}.{i}"):
                admitted.append(f"{name}{i}")

    threads = [threading.Thread(target=ask, args=(registry, name)) for registry, name in zip(registries, "12")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 7
    assert registries[0].live == 7


def _gated_pool(coordinator, total):
    pool = FairPool(slots=total)
    pool.gate = SlotGate(coordinator, total)
    return pool


def test_the_compute_slots_are_one_number_for_every_process(two_processes):
    pools = [_gated_pool(coordinator, 2) for coordinator in two_processes]
    running, most, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def work(job):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            release.wait(30)
        finally:
            with lock:
                running[0] -= 1

    jobs = [pool.submit(Job(work, session=f"s{p}{i}")) for p, pool in enumerate(pools) for i in range(3)]
    _wait_for(lambda: running[0] == 2, what="two jobs computing")
    _wait_for(lambda: two_processes[0].waiting() == 4, what="the four others in the shared line")
    assert running[0] == 2 and two_processes[0].held() == 2
    release.set()
    for job in jobs:
        assert job.finished.wait(30)
    assert most[0] == 2
    _wait_for(lambda: two_processes[0].held() == 0 and two_processes[0].waiting() == 0, what="slots back")


def test_a_waiting_session_counts_the_other_processes_sessions_ahead(two_processes):
    first, second = (_gated_pool(coordinator, 1) for coordinator in two_processes)
    release = threading.Event()
    first.submit(Job(lambda job: release.wait(30), session="busy"))
    _wait_for(lambda: first.busy() == 1, what="the slot taken")
    early = [first.submit(Job(lambda job: None, session=f"early{i}")) for i in range(2)]
    positions = []
    late = second.submit(Job(lambda job: None, session="late", on_position=positions.append))
    _wait_for(lambda: positions and positions[-1] == 3, what="place 3 in the line")
    release.set()
    assert late.finished.wait(30) and all(job.finished.wait(30) for job in early)


def test_a_long_piece_gives_its_slot_to_another_process_at_its_checkpoint(two_processes):
    first, second = (_gated_pool(coordinator, 1) for coordinator in two_processes)
    stop = threading.Event()
    pieces = []

    def long_job(job):
        while not stop.is_set():
            time.sleep(0.06)  # a piece longer than scheduler.SHORT_PIECE_S
            pieces.append(time.monotonic())
            job.checkpoint()

    heavy = first.submit(Job(long_job, session="heavy"))
    _wait_for(lambda: len(pieces) >= 3, what="the heavy session running")
    short = second.submit(Job(lambda job: "done", session="light"))
    # Within a piece or two (0.06 s each) and the gate's polls; 5 s leaves room for a loaded machine
    # (without the yield at the checkpoint it never runs: the leases are renewed, nothing expires).
    assert short.finished.wait(5) and short.result == "done"
    stop.set()
    assert heavy.finished.wait(30)


def test_a_crashed_process_gives_back_its_viewers_and_slots(tmp_path):
    survivor = Coordinator(tmp_path)
    script = textwrap.dedent(f"""
        import sys, time
        from nbody_explorer.runtime.coordinator import Coordinator
        c = Coordinator({str(tmp_path)!r})
        c.publish_viewers({{"x1": "10.0.0.1", "x2": "10.0.0.2"}})
        assert c.try_acquire(1, time.time(), 4)
        print("ready", flush=True)
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert child.stdout.readline().strip() == "ready"
        assert survivor.viewers() == 2 and survivor.held() == 1 and survivor.processes() == 2
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        # Its pid is gone on this host: freed at the next reap (every 0.25 s), not after the lease.
        _wait_for(lambda: survivor.viewers() == 0 and survivor.held() == 0, timeout=5, what="the share back")
        assert survivor.processes() == 1
    finally:
        if child.poll() is None:
            child.kill()
        survivor.close()


def test_a_process_that_stops_renewing_its_lease_is_taken_for_dead(tmp_path):
    now = [1000.0]
    silent = Coordinator(tmp_path, clock=lambda: now[0])  # same pid as the test: only the lease can tell
    silent.publish_viewers({"s1": "10.0.0.1"})
    other = Coordinator(tmp_path, clock=lambda: now[0], lease_s=5.0)
    assert other.viewers() == 1
    now[0] += 4.0
    other.beat()
    other._last_reap = float("-inf")
    assert other.viewers() == 1  # within its lease
    now[0] += 2.0
    other._last_reap = float("-inf")
    assert other.viewers() == 0 and other.processes() == 1
    other.close()


def test_install_from_environment_is_off_without_a_runtime_directory(tmp_path):
    pool, registry = FairPool(slots=2), SessionRegistry()
    assert install_from_environment(pool, registry, {}) is None
    assert pool.gate is None and registry.coordinator is None
    coordinator = install_from_environment(pool, registry, {"NBODY_RUNTIME_DIR": str(tmp_path)})
    try:
        assert pool.gate is not None and pool.gate.total == 2 and registry.coordinator is coordinator
        assert install_from_environment(pool, registry, {"NBODY_RUNTIME_DIR": str(tmp_path)}) is coordinator
        assert pool.health()["slots_total"] == 2
    finally:
        coordinator.close()
