"""Keep a test module whose tests share an expensive fixture on one xdist worker.

A module whose tests share a module- or session-scoped fixture defined in it (a trained
emulator, a built docs site, sampled chains) runs on one worker: spread over several, each
worker built the fixture again (the docs site was built twice, ~2 min each, in CI). Browser
tests have their own group (tests/ui/conftest.py).

The hook must run before pytest-xdist's own ``pytest_collection_modifyitems``, which turns a
test's ``xdist_group`` mark into the suffix of its id that ``--dist loadgroup`` schedules by: a
mark added after it is ignored. The root conftest's hook runs after xdist's unless it asks to
run first (``tryfirst``), so these marks did nothing in CI while the browser tests' (a deeper
conftest, which runs earlier) worked. tests/test_xdist_groups.py runs this hook in a small suite.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("xdist_group") or "/ui/" in item.nodeid.split("::")[0]:
            continue
        info = getattr(item, "_fixtureinfo", None)
        module = item.nodeid.split("::")[0]
        if info is None:
            continue
        shared = any(
            definition.scope in ("module", "session", "package") and definition.baseid == module
            for name in info.names_closure for definition in info.name2fixturedefs.get(name, ())
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(module))
