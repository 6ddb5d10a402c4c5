"""Per-session resource caps for the dashboard, and safe download file names.

One browser session must not be able to starve the others on a shared server: every
request for bodies, ensemble members, HMC samples/chains, steps or upload bytes is checked
against :data:`LIMITS` before any work starts. The defaults suit a shared 2-core classroom
server; a private instance raises them with environment variables read once at import::

    NBODY_MAX_BODIES=5000 NBODY_MAX_ENSEMBLE_MEMBERS=4096 panel serve app

A malformed variable (not a positive integer, or above the hard ceiling) raises
``ValueError`` at import with the variable named, so a misconfigured server fails at start,
not mid-lecture. No Panel import here: state classes and the CLI can use it too.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, fields
from typing import Mapping

__all__ = [
    "Limits",
    "LIMITS",
    "ENVIRONMENT_VARIABLES",
    "limits_from_environment",
    "check_limit",
    "safe_filename",
    "DEFAULT_MAX_SESSIONS",
    "max_sessions_from_environment",
    "DEFAULT_MAX_SESSIONS_PER_ADDRESS",
    "max_sessions_per_address_from_environment",
    "DEFAULT_DISCONNECT_GRACE_S",
    "disconnect_grace_from_environment",
    "DEFAULT_CONNECT_TIMEOUT_S",
    "connect_timeout_from_environment",
    "SECONDS_PER_PAIR_STEP",
    "STEP_OVERHEAD_PAIRS",
    "GRADIENT_COST_FACTOR",
    "simulation_cpu_seconds",
    "ensemble_cpu_seconds",
    "inference_cpu_seconds",
    "check_cost",
]


@dataclass(frozen=True)
class Limits:
    """Caps on what one dashboard session may request (all positive integers).

    Attributes:
        max_bodies: bodies N in one simulation (Simulate, Forces, uploads).
        max_ensemble_members: members M in one ensemble run.
        max_ensemble_bodies: bodies N per ensemble member.
        max_hmc_samples: HMC draws per chain (and, separately, warm-up transitions per chain).
        max_hmc_chains: HMC chains run together.
        max_leapfrog_steps: leapfrog steps per HMC proposal.
        max_steps_per_frame: integrator steps per animation frame.
        max_simulation_steps: integrator steps of one whole run (ensemble / inference / export).
        max_upload_bytes: size of an uploaded initial-conditions file, bytes.
        max_trail_length: stored trail points per body in the live view.
        max_click_cpu_seconds: estimated CPU seconds one click (an ensemble run, an HMC
            run) may ask for (:func:`check_cost`).
    """

    max_bodies: int = 2000
    max_ensemble_members: int = 1024
    max_ensemble_bodies: int = 512
    max_hmc_samples: int = 5000
    max_hmc_chains: int = 8
    max_leapfrog_steps: int = 200
    max_steps_per_frame: int = 200
    max_simulation_steps: int = 200_000
    max_upload_bytes: int = 1_000_000
    max_trail_length: int = 2000
    max_click_cpu_seconds: int = 5


# Hard ceilings: even a private instance cannot go past these (the core caps presets at
# 20 000 bodies and refuses CSV files over 5 MB before parsing; see nbody_core).
_CEILINGS = {
    "max_bodies": 20_000,
    "max_ensemble_members": 1_000_000,
    "max_ensemble_bodies": 20_000,
    "max_hmc_samples": 1_000_000,
    "max_hmc_chains": 1024,
    "max_leapfrog_steps": 10_000,
    "max_steps_per_frame": 100_000,
    "max_simulation_steps": 100_000_000,
    "max_upload_bytes": 5_000_000,
    "max_trail_length": 1_000_000,
    "max_click_cpu_seconds": 86_400,
}

#: Environment variable for each field, e.g. ``NBODY_MAX_BODIES`` for ``max_bodies``.
ENVIRONMENT_VARIABLES = {f.name: "NBODY_" + f.name.upper() for f in fields(Limits)}

_HUMAN_NAMES = {
    "max_bodies": "number of bodies",
    "max_ensemble_members": "number of ensemble members",
    "max_ensemble_bodies": "number of bodies per ensemble member",
    "max_hmc_samples": "number of HMC samples",
    "max_hmc_chains": "number of HMC chains",
    "max_leapfrog_steps": "number of leapfrog steps per proposal",
    "max_steps_per_frame": "steps per frame",
    "max_simulation_steps": "number of simulation steps",
    "max_upload_bytes": "upload size in bytes",
    "max_trail_length": "trail length",
    "max_click_cpu_seconds": "CPU seconds per click",
}


# Smallest sensible value of each cap (an N-body system has two bodies, a trail two points).
_FLOORS = {"max_bodies": 2, "max_ensemble_bodies": 2, "max_trail_length": 2}


def _parse_positive_int(variable: str, text: str, ceiling: int, floor: int = 1) -> int:
    cleaned = text.strip().replace("_", "")
    if not re.fullmatch(r"[0-9]+", cleaned):
        raise ValueError(f"environment variable {variable}={text!r} must be a positive integer")
    value = int(cleaned)
    if value < floor:
        raise ValueError(f"environment variable {variable}={text!r} must be at least {floor}")
    if value > ceiling:
        raise ValueError(f"environment variable {variable}={value} exceeds the hard ceiling {ceiling}")
    return value


def limits_from_environment(environ: Mapping[str, str] | None = None) -> Limits:
    """Build :class:`Limits` from defaults overridden by ``NBODY_MAX_*`` variables.

    Args:
        environ: mapping to read (``os.environ`` by default).

    Raises:
        ValueError: naming the variable, if a value is not a positive integer or exceeds
            its hard ceiling.
    """
    environ = os.environ if environ is None else environ
    values = {}
    for name, variable in ENVIRONMENT_VARIABLES.items():
        if variable in environ:
            values[name] = _parse_positive_int(variable, environ[variable], _CEILINGS[name], _FLOORS.get(name, 1))
    return Limits(**values)


#: The caps of this server process, read once at import.
LIMITS = limits_from_environment()


def check_limit(name: str, value, *, limits: Limits | None = None) -> int:
    """Return ``value`` as an int if ``1 <= value <= limits.<name>``, else raise ValueError.

    Args:
        name: a :class:`Limits` field, e.g. ``"max_bodies"``.
        value: the requested count.
        limits: caps to check against (:data:`LIMITS` by default).

    Raises:
        ValueError: naming the quantity, the value and the cap (and the variable that
            raises it on a private instance).
    """
    limits = LIMITS if limits is None else limits
    if name not in ENVIRONMENT_VARIABLES:
        raise ValueError(f"unknown limit {name!r}; choose one of {sorted(ENVIRONMENT_VARIABLES)}")
    what = _HUMAN_NAMES[name]
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if not isinstance(value, int):
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise ValueError(f"{what} must be an integer, got {value!r}")
        value = int(as_float)
    cap = getattr(limits, name)
    if value < 1:
        raise ValueError(f"{what} must be at least 1, got {value}")
    if value > cap:
        raise ValueError(
            f"{what} {value} exceeds this server's cap of {cap} "
            f"(a private instance can raise it with {ENVIRONMENT_VARIABLES[name]})"
        )
    return value


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def safe_filename(name: str, *, default: str = "nbody", suffix: str | None = None, max_length: int = 100) -> str:
    """A download file name that is safe on every OS and in a Content-Disposition header.

    Keeps ASCII letters, digits, ``.``, ``_`` and ``-`` (accents are stripped, anything else
    becomes ``_``); drops directory parts and leading dots (no ``../``, no hidden files);
    avoids Windows device names; truncates to ``max_length`` characters; and ends in
    ``suffix`` (e.g. ``".npz"``) when given.

    Args:
        name: the proposed name (may come from a preset, a user upload or a URL).
        default: stem used when nothing safe is left.
        suffix: required extension, including the dot.
        max_length: longest name returned, suffix included.
    """
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = text.replace("\\", "/").split("/")[-1]
    if suffix and text.lower().endswith(suffix.lower()):
        text = text[: -len(suffix)]
    stem = _UNSAFE.sub("_", text).strip("._-")
    stem = re.sub(r"_{2,}", "_", stem)
    if not stem or stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem = (default + "_" + stem) if stem else default
    suffix = suffix or ""
    stem = stem[: max(1, max_length - len(suffix))].rstrip("._-") or default
    return stem + suffix


#: Default most dashboard sessions at once (a class of 30 on one server, issue 11).
DEFAULT_MAX_SESSIONS = 30
_MAX_SESSIONS_CEILING = 10_000


def max_sessions_from_environment(environ: Mapping[str, str] | None = None) -> int:
    """The server's session cap: ``NBODY_MAX_SESSIONS`` (``nbody serve --max-sessions``) or 30.

    Raises:
        ValueError: naming the variable, if it is not a positive integer up to 10 000.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("NBODY_MAX_SESSIONS")
    if text is None or not text.strip():
        return DEFAULT_MAX_SESSIONS
    return _parse_positive_int("NBODY_MAX_SESSIONS", text, _MAX_SESSIONS_CEILING)


#: Default most sessions one client address holds (issue 26): a student's few tabs. A class
#: behind one NAT router reaches a server outside its LAN from one address: raise it there
#: (at least the class size), or 0 for no per-address cap.
DEFAULT_MAX_SESSIONS_PER_ADDRESS = 5
#: Default seconds a viewer whose websocket dropped keeps its place (a reconnecting page).
DEFAULT_DISCONNECT_GRACE_S = 5.0
_DISCONNECT_GRACE_CEILING_S = 600.0


def max_sessions_per_address_from_environment(environ: Mapping[str, str] | None = None) -> int:
    """Most sessions of one client address: ``NBODY_MAX_SESSIONS_PER_ADDRESS``
    (``nbody serve --max-sessions-per-address``) or 5; 0 means no per-address cap.

    Raises:
        ValueError: naming the variable, if it is not a whole number in [0, 10 000].
    """
    environ = os.environ if environ is None else environ
    text = environ.get("NBODY_MAX_SESSIONS_PER_ADDRESS")
    if text is None or not text.strip():
        return DEFAULT_MAX_SESSIONS_PER_ADDRESS
    return _parse_positive_int("NBODY_MAX_SESSIONS_PER_ADDRESS", text, _MAX_SESSIONS_CEILING, floor=0)


#: Default seconds a page request may take to connect its websocket before its session is
#: handed back to Bokeh for destruction (a plain GET never connects).
DEFAULT_CONNECT_TIMEOUT_S = 5.0


def _seconds_from_environment(environ: Mapping[str, str] | None, name: str, default: float, low: float) -> float:
    """Seconds read from the variable ``name``: ``default`` when unset or blank.

    Raises:
        ValueError: naming the variable, if it is not a number of seconds in [low, 600].
    """
    environ = os.environ if environ is None else environ
    text = environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} must be a number of seconds") from None
    if not low <= value <= _DISCONNECT_GRACE_CEILING_S:
        raise ValueError(f"environment variable {name}={text!r} must be in [{low:g}, 600] seconds")
    return value


def connect_timeout_from_environment(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a page's browser has to connect: ``NBODY_CONNECT_TIMEOUT_S``
    (``nbody serve --connect-timeout``) or 5.

    Raises:
        ValueError: naming the variable, if it is not a number of seconds in [1, 600].
    """
    return _seconds_from_environment(environ, "NBODY_CONNECT_TIMEOUT_S", DEFAULT_CONNECT_TIMEOUT_S, 1.0)


def disconnect_grace_from_environment(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a viewer whose connection dropped still counts: ``NBODY_DISCONNECT_GRACE_S``
    (``nbody serve --disconnect-grace``) or 5.

    Raises:
        ValueError: naming the variable, if it is not a number of seconds in [0, 600].
    """
    return _seconds_from_environment(environ, "NBODY_DISCONNECT_GRACE_S", DEFAULT_DISCONNECT_GRACE_S, 0.0)


# ------------------------------------------------------------------ cost of a click
#
# One model for every tab: a run costs (N^2 + STEP_OVERHEAD_PAIRS) x steps x force
# evaluations x SECONDS_PER_PAIR_STEP of CPU per system. Calibrated on this project's 2-core
# AMD EPYC (process CPU time, jax 0.10, auto force kernel, load 5-9) with vmapped ensembles
# (benchmarks like nbody_core.ensembles.run_ensemble, chunks of 32): per member-step 2.6e-7 s
# at N = 4, 8.5e-7 at N = 8, 3.6e-6 at N = 32, 1.5e-5 at N = 64, 6.0e-5 at N = 128 and
# 4.2e-4 at N = 256; the constants below give 0.9x to 1.9x these (an over-estimate except
# at N = 8 and 256, where they are 10 % under). HMC gradients of the inference problems (N = 3, 100-200 steps) measured
# 7.4e-5 to 9.4e-5 CPU s each, 1.7-2.1 forward runs: GRADIENT_COST_FACTOR.

#: CPU seconds per pair interaction of one integration step (see above).
SECONDS_PER_PAIR_STEP = 6e-9
#: Fixed cost of one step of one system, in pair interactions (dominates below N ~ 8).
STEP_OVERHEAD_PAIRS = 64
#: A log-density gradient through a simulation costs this many forward simulations.
GRADIENT_COST_FACTOR = 2.0


def simulation_cpu_seconds(*, num_bodies: int, num_steps, force_evaluations: int = 1) -> float:
    """Estimated CPU seconds of integrating ``num_bodies``-body systems.

    Args:
        num_bodies: N of each system.
        num_steps: integration steps, an int or a ``[systems]`` array (summed).
        force_evaluations: force evaluations per step of the integrator.

    Returns:
        CPU seconds, ``sum(num_steps) x (N^2 + STEP_OVERHEAD_PAIRS) x force_evaluations x
        SECONDS_PER_PAIR_STEP``.
    """
    import numpy as np  # local: this module stays import-light for the CLI

    pairs = float(num_bodies) ** 2 + STEP_OVERHEAD_PAIRS
    return float(np.sum(num_steps)) * pairs * force_evaluations * SECONDS_PER_PAIR_STEP


def ensemble_cpu_seconds(*, num_bodies: int, member_steps, force_evaluations: int = 1, loop_members: int = 0) -> float:
    """Estimated CPU seconds of an ensemble.

    Args:
        num_bodies: N of every member.
        member_steps: ``[members]`` integration steps of each member.
        force_evaluations: force evaluations per step.
        loop_members: members run again one by one (the timing baseline of the Ensembles
            tab), each counted at the longest member's steps.

    Returns:
        CPU seconds (:func:`simulation_cpu_seconds` of all those steps).
    """
    import numpy as np

    steps = np.asarray(member_steps, dtype=float)
    loop = loop_members * float(steps.max()) if steps.size else 0.0
    return simulation_cpu_seconds(num_bodies=num_bodies, num_steps=steps.sum() + loop,
                                  force_evaluations=force_evaluations)


def inference_cpu_seconds(*, num_chains: int, num_transitions: int, leapfrog_steps: int, num_bodies: int,
                          simulation_steps: int) -> float:
    """Estimated CPU seconds of an HMC run: ``num_chains x num_transitions x
    (leapfrog_steps + 1)`` log-density gradients, each a simulation of
    ``simulation_steps`` steps of ``num_bodies`` bodies differentiated
    (:data:`GRADIENT_COST_FACTOR` forward runs).

    Returns:
        CPU seconds.
    """
    gradients = num_chains * num_transitions * (leapfrog_steps + 1)
    return GRADIENT_COST_FACTOR * gradients * simulation_cpu_seconds(num_bodies=num_bodies, num_steps=simulation_steps)


def check_cost(seconds: float, *, what: str, reduce: str, limits: Limits | None = None) -> float:
    """Refuse a click whose estimated CPU cost is over this server's budget.

    Args:
        seconds: the estimate (:func:`ensemble_cpu_seconds`, :func:`inference_cpu_seconds`).
        what: the request in the user's words, e.g. ``"this ensemble"``.
        reduce: what to reduce, in the user's words, e.g. ``"members, bodies or steps"``.
        limits: caps to check against (:data:`LIMITS` by default).

    Returns:
        ``seconds`` when within the budget.

    Raises:
        ValueError: saying the estimate, the budget, how many times too much it is and
            what to reduce.
    """
    limits = LIMITS if limits is None else limits
    budget = limits.max_click_cpu_seconds
    if seconds <= budget:
        return seconds
    factor = seconds / budget
    times = f"{factor:.0f}" if factor >= 10 else f"{factor:.1f}"
    raise ValueError(
        f"{what} would need about {_duration(seconds)} of the server's CPU, {times} times the "
        f"{budget} s one click may use on this shared server: reduce {reduce} until it is about {times} times smaller "
        f"(a private instance can raise the budget with {ENVIRONMENT_VARIABLES['max_click_cpu_seconds']})"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"
