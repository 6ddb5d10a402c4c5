"""Fixed-step integrators: ``make_step(acceleration_fn) -> step_fn``.

Every step function has the same signature::

    step_fn(state, acceleration, dt, params) -> (new_state, new_acceleration)

where ``acceleration`` is ``acceleration_fn`` evaluated at ``state.position`` (carried from
the previous step, so no integrator pays for it twice). ``dt`` and ``params`` are traced.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from .forces import AccelerationFn
from .state import ParticleState

__all__ = ["Integrator", "INTEGRATORS", "get_integrator", "euler", "leapfrog", "yoshida4", "rk4"]


def euler(acceleration_fn: AccelerationFn):
    """Explicit (forward) Euler: first order, not symplectic; energy drifts secularly."""

    def step_fn(state: ParticleState, acceleration, dt, params):
        position = state.position + dt * state.velocity
        velocity = state.velocity + dt * acceleration
        new_acceleration = acceleration_fn(position, state.mass, params)
        return state._replace(position=position, velocity=velocity, time=state.time + dt), new_acceleration

    return step_fn


def _kick_drift_kick(acceleration_fn, state, acceleration, h, params):
    velocity_half = state.velocity + 0.5 * h * acceleration
    position = state.position + h * velocity_half
    new_acceleration = acceleration_fn(position, state.mass, params)
    velocity = velocity_half + 0.5 * h * new_acceleration
    return state._replace(position=position, velocity=velocity, time=state.time + h), new_acceleration


def leapfrog(acceleration_fn: AccelerationFn):
    """Leapfrog kick-drift-kick (= velocity Verlet): second order, symplectic, time-reversible.

    One force evaluation per step (the closing kick's acceleration is carried forward).
    """

    def step_fn(state, acceleration, dt, params):
        return _kick_drift_kick(acceleration_fn, state, acceleration, dt, params)

    return step_fn


# Yoshida (1990), Phys. Lett. A 150, 262, eq. (5.19): the fourth-order triple-jump
# composition of second-order leapfrog steps with weights w1, w0, w1.
_CBRT2 = 2.0 ** (1.0 / 3.0)
YOSHIDA_W1 = 1.0 / (2.0 - _CBRT2)
YOSHIDA_W0 = -_CBRT2 / (2.0 - _CBRT2)


def yoshida4(acceleration_fn: AccelerationFn):
    """Yoshida's fourth-order symplectic integrator (three leapfrog sub-steps, 3 force evals)."""

    def step_fn(state, acceleration, dt, params):
        for weight in (YOSHIDA_W1, YOSHIDA_W0, YOSHIDA_W1):
            state, acceleration = _kick_drift_kick(
                acceleration_fn, state, acceleration, weight * dt, params
            )
        return state, acceleration

    return step_fn


def rk4(acceleration_fn: AccelerationFn):
    """Classical fourth-order Runge-Kutta on (x, v): accurate but not symplectic."""

    def step_fn(state, acceleration, dt, params):
        x, v, m = state.position, state.velocity, state.mass
        k1x, k1v = v, acceleration
        k2x = v + 0.5 * dt * k1v
        k2v = acceleration_fn(x + 0.5 * dt * k1x, m, params)
        k3x = v + 0.5 * dt * k2v
        k3v = acceleration_fn(x + 0.5 * dt * k2x, m, params)
        k4x = v + dt * k3v
        k4v = acceleration_fn(x + dt * k3x, m, params)
        position = x + dt / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
        velocity = v + dt / 6.0 * (k1v + 2.0 * k2v + 2.0 * k3v + k4v)
        new_acceleration = acceleration_fn(position, m, params)
        return state._replace(position=position, velocity=velocity, time=state.time + dt), new_acceleration

    return step_fn


class Integrator(NamedTuple):
    """Registry entry: how to build a step function and what to expect of it."""

    name: str
    make_step: Callable
    order: int
    symplectic: bool
    force_evaluations_per_step: int
    description: str


INTEGRATORS: dict[str, Integrator] = {
    integrator.name: integrator
    for integrator in (
        Integrator("euler", euler, 1, False, 1, "explicit Euler, order 1 (the cautionary tale)"),
        Integrator("leapfrog", leapfrog, 2, True, 1, "leapfrog KDK / velocity Verlet, order 2, symplectic"),
        Integrator("yoshida4", yoshida4, 4, True, 3, "Yoshida 1990, order 4, symplectic"),
        Integrator("rk4", rk4, 4, False, 4, "classical Runge-Kutta, order 4, not symplectic"),
    )
}


def get_integrator(name: str) -> Integrator:
    """Look up a fixed-step integrator by name, with a clear error for unknown names."""
    try:
        return INTEGRATORS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown integrator {name!r}; choose one of {sorted(INTEGRATORS)}"
            " (or 'dopri8' via simulate_adaptive)"
        ) from None
