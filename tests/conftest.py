"""Shared fixtures: float64 everywhere (the documented call, as the CLI and the app make it)
and an explicit PRNG key."""

import jax
import pytest

import nbody_core

nbody_core.enable_float64()


@pytest.fixture
def key():
    return jax.random.key(20261125)
