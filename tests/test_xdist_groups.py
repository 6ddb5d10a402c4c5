"""`--dist loadgroup` really groups: tests marked with one ``xdist_group`` run on one worker.

The suite relies on it (pyproject.toml's addopts): every browser test shares one served app and
one Chromium on one worker, and a module's expensive shared fixture (a built docs site, a trained
emulator) is built once. With pytest 9 and pytest-xdist 3.8 the grouping silently stopped
working (the group suffix went into an attribute pytest no longer reads) and nothing failed; this
test runs a small suite in a subprocess with the same options and checks where each test ran.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path


def _run_suite(tmp_path, target):
    """Run ``target`` (a test file or folder under ``tmp_path``) with the suite's xdist options in
    a subprocess; the folder its tests record into (``$GROUP_RECORD``)."""
    record = tmp_path / "record"
    record.mkdir()
    env = {**os.environ, "GROUP_RECORD": str(record)}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2", "--dist", "loadgroup",
         str(target)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return record


def test_loadgroup_sends_a_group_to_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(textwrap.dedent("""
        import json, os, pathlib, time
        import pytest

        def _record(name):
            # Long enough that an idle worker would take the next test if the group were ignored.
            time.sleep(0.3)
            out = pathlib.Path(os.environ["GROUP_RECORD"]) / f"{name}.json"
            out.write_text(json.dumps(os.environ.get("PYTEST_XDIST_WORKER")))

        @pytest.mark.parametrize("i", range(6))
        @pytest.mark.xdist_group("together")
        def test_grouped(i):
            _record(f"grouped{i}")

        @pytest.mark.parametrize("i", range(6))
        def test_free(i):
            _record(f"free{i}")
    """))
    record = _run_suite(tmp_path, tmp_path / "test_grouped.py")
    workers = {path.stem: json.loads(path.read_text()) for path in record.glob("*.json")}
    assert len(workers) == 12
    grouped = {workers[f"grouped{i}"] for i in range(6)}
    assert len(grouped) == 1, f"the group ran on {sorted(grouped)}: --dist loadgroup does not group"
    # Both workers took part: the ungrouped tests went to the worker the group did not occupy.
    assert len(set(workers.values())) == 2, workers


def test_a_module_sharing_a_fixture_it_defines_runs_on_one_worker(tmp_path):
    """The suite's own hook (tests/xdist_grouping.py, used by tests/conftest.py): a module with a
    module-scoped fixture of its own builds it once, on one worker."""
    tests_dir = Path(__file__).resolve().parent
    (tmp_path / "conftest.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tests_dir)!r})
        from xdist_grouping import pytest_collection_modifyitems  # noqa: F401
    """))
    (tmp_path / "test_shared.py").write_text(textwrap.dedent("""
        import json, os, pathlib, time
        import pytest

        @pytest.fixture(scope="module")
        def expensive():
            out = pathlib.Path(os.environ["GROUP_RECORD"]) / f"built-{os.environ['PYTEST_XDIST_WORKER']}"
            out.write_text("1")
            return 1

        @pytest.mark.parametrize("i", range(6))
        def test_uses_it(expensive, i):
            time.sleep(0.3)
    """))
    (tmp_path / "test_other.py").write_text(textwrap.dedent("""
        import time
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_free(i):
            time.sleep(0.3)
    """))
    record = _run_suite(tmp_path, tmp_path)
    built = sorted(path.name for path in record.iterdir())
    assert len(built) == 1, f"the module's fixture was built on {built}: the module was not kept together"
