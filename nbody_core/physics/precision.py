"""float64 in JAX is a process-wide switch, turned on by an explicit call, never by an import.

JAX computes in float32 unless its ``jax_enable_x64`` flag is on; with it off, an array asked
for as float64 is silently made float32. :func:`enable_float64` turns the flag on (call it
once, before computing: the CLI, the app and the test suite do); :func:`require_float64` is
what the library's float64 constructors call, so a float64 state is never float32 by accident.
JAX-free: importing this module (and asking :func:`float64_enabled`) does not load JAX.
"""

from __future__ import annotations

import os
import sys

__all__ = ["enable_float64", "float64_enabled", "require_float64", "FLOAT64_DISABLED_MESSAGE"]

#: The values JAX reads as "on" in the ``JAX_ENABLE_X64`` environment variable.
_TRUE_WORDS = ("1", "y", "yes", "t", "true", "on")

#: What a float64 request says when JAX's 64-bit mode is off (names the fix).
FLOAT64_DISABLED_MESSAGE = (
    "float64 was requested but JAX's 64-bit mode is off, so JAX would silently compute in float32: "
    "call nbody_core.enable_float64() once before computing, or ask for float32 (dtype=jnp.float32)"
)


def enable_float64() -> None:
    """Turn on JAX's 64-bit mode (``jax_enable_x64``) for this process. Idempotent.

    Call it once, before the first computation: arrays JAX made before it stay float32. When
    JAX is not imported yet it is not imported here (``nbody presets`` stays JAX-free): the
    ``JAX_ENABLE_X64`` environment variable is set instead, which JAX reads when it loads
    (child processes inherit it).
    """
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.config.update("jax_enable_x64", True)
    else:
        os.environ["JAX_ENABLE_X64"] = "1"


def float64_enabled() -> bool:
    """Whether JAX computes in float64 when asked (``jax_enable_x64``, or the environment
    variable JAX will read when it is not loaded yet)."""
    jax = sys.modules.get("jax")
    if jax is not None and hasattr(jax, "config"):
        return bool(jax.config.jax_enable_x64)
    return os.environ.get("JAX_ENABLE_X64", "").strip().lower() in _TRUE_WORDS


def require_float64(dtype) -> None:
    """Refuse a float64 ``dtype`` while JAX's 64-bit mode is off (a float32 ``dtype`` passes).

    Args:
        dtype: the floating dtype asked for (``jnp.float64``, ``np.float64``, ``"float64"``...).

    Raises:
        RuntimeError: ``dtype`` is float64 and :func:`float64_enabled` is False; the message
            names the fix (:func:`enable_float64`).
    """
    import numpy as np

    if np.dtype(dtype) == np.float64 and not float64_enabled():
        raise RuntimeError(FLOAT64_DISABLED_MESSAGE)
