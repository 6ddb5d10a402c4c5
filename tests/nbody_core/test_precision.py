"""float64 is an explicit call (``nbody_core.enable_float64()``), never an import side effect, and
a float64 state is never silently float32.

Each case runs in a fresh interpreter: this test process turned float64 on in tests/conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import nbody_core as nb
from nbody_core.physics.precision import FLOAT64_DISABLED_MESSAGE

REPO = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_ENABLE_X64", None)  # as a fresh shell has it
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=300, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_importing_nbody_core_leaves_float64_off_and_the_call_turns_it_on():
    assert _run("""
        import os, jax
        import nbody_core as nb
        state = nb.figure_eight  # a public name loads its module: still no setting changed
        before = (jax.config.jax_enable_x64, nb.float64_enabled(), "JAX_ENABLE_X64" in os.environ)
        nb.enable_float64()
        nb.enable_float64()  # idempotent
        after = (jax.config.jax_enable_x64, nb.float64_enabled())
        print(before, after, nb.figure_eight().position.dtype)
    """) == "(False, False, False) (True, True) float64"


def test_before_jax_loads_the_call_sets_the_variable_jax_reads():
    # `nbody presets` stays JAX-free: the call does not import JAX.
    assert _run("""
        import sys
        import nbody_core as nb
        nb.enable_float64()
        loaded = "jax" in sys.modules
        import jax
        print(loaded, jax.config.jax_enable_x64, nb.float64_enabled())
    """) == "False True True"


def test_a_float64_state_with_float64_off_is_a_clear_error_and_float32_still_works():
    out = _run("""
        import jax
        import jax.numpy as jnp
        import nbody_core as nb
        messages = []
        single = nb.make_state([[0, 0, 0], [1, 0, 0]], [[0, 0, 0], [0, 1, 0]], [1, 1], dtype=jnp.float32)
        for build in (lambda: nb.make_state([[0, 0, 0], [1, 0, 0]], [[0, 0, 0], [0, 1, 0]], [1, 1]),
                      lambda: nb.figure_eight(),
                      lambda: nb.plummer(jax.random.key(0), 8),
                      lambda: nb.cast_state(single, jnp.float64),
                      lambda: nb.PhysicsParams().astype(jnp.float64)):
            try:
                build()
                messages.append("built")
            except RuntimeError as error:
                messages.append(str(error))
        print(len(set(messages)), messages[0] == nb.physics.precision.FLOAT64_DISABLED_MESSAGE,
              single.position.dtype, nb.PhysicsParams().astype(jnp.float32).G.dtype)
    """)
    assert out == "1 True float32 float32"


def test_the_message_names_the_fix():
    assert "nbody_core.enable_float64()" in FLOAT64_DISABLED_MESSAGE
    assert "float32" in FLOAT64_DISABLED_MESSAGE


@pytest.mark.parametrize("dtype", [jnp.float64, np.float64, "float64"])
def test_with_float64_on_every_spelling_of_float64_builds(dtype):
    # This process called nbody_core.enable_float64() (tests/conftest.py).
    assert nb.float64_enabled()
    state = nb.make_state([[0, 0, 0], [1, 0, 0]], [[0, 0, 0], [0, 1, 0]], [1, 1], dtype=dtype)
    assert state.position.dtype == jnp.float64
