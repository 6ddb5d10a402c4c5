"""Run event-loop code from tests that may share an xdist worker with browser tests.

Once a worker has run a browser test, Playwright's sync API keeps an event loop running on
the worker's main thread for the rest of the session: there ``asyncio.run`` refuses to start
("cannot be called from a running event loop"), and so does a second ``sync_playwright()``.
Browser tests run on one worker, which then takes other tests: the two-servers-behind-nginx
test, the memory test (benchmarks/bench_memory.py) and the fuzz clients failed this way in CI.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Coroutine


def call_on_own_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` on a thread of its own (no event loop running there); its result,
    or its exception re-raised here."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - re-raised on the caller's thread
            box["error"] = error

    thread = threading.Thread(target=target, name="own-event-loop")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_on_own_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run(coroutine)`` on a thread of its own."""
    return call_on_own_thread(asyncio.run, coroutine)
