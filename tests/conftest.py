"""Shared fixtures: float64 everywhere and an explicit PRNG key."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key():
    return jax.random.key(20261125)
