"""Fixtures for the container check (run by scripts/ci_docker.sh, not by the main suite)."""

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium: Playwright cannot download its own browsers here."""
    return {**browser_type_launch_args, "executable_path": shutil.which("chromium") or "/usr/bin/chromium"}


@pytest.fixture(scope="session")
def container_url():
    """URL of the dashboard served by the running container (set by scripts/ci_docker.sh)."""
    url = os.environ.get("NBODY_CONTAINER_URL")
    if not url:
        raise RuntimeError("NBODY_CONTAINER_URL is not set: run this through scripts/ci_docker.sh")
    return url
