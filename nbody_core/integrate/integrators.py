"""The integrator registry: every integrator, fixed-step and adaptive, as one record each.

Contract: :data:`INTEGRATORS` (a :class:`~nbody_core.registry.Registry`) maps a name to an
:class:`Integrator` record saying what it is (adaptive or fixed-step, order, symplectic,
cost, description, colour) and how to run it; :func:`nbody_core.solve` runs any of them, and
callers ask the record (``get_integrator(name).adaptive``), never which table holds a name.
The CLI, the dashboard and the ensembles read it.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from nbody_core.physics.forces import AccelerationFn
from nbody_core.registry import Registry
from .adaptive import DEFAULT_ATOL, DEFAULT_RTOL, solve_dopri8
from .fixed_step import (
    IntegratorState as IntegratorState,
    InitFn,
    StepFn,
    euler as euler,
    leapfrog as leapfrog,
    rk4 as rk4,
    yoshida4 as yoshida4,
    yoshida4_kdk as yoshida4_kdk,
)
from .ias15 import EPSILON, solve_ias15

__all__ = ["Integrator", "INTEGRATORS", "get_integrator", "register_integrator"]


class Integrator(NamedTuple):
    """Registry entry: how to run an integrator and what to expect of it.

    Attributes:
        name: registry key (``--integrator`` / ``integrator=`` value).
        build: fixed-step: ``build(acceleration_fn) -> (init_fn, step_fn)`` (see
            :mod:`nbody_core.integrate.fixed_step`); None for an adaptive integrator.
        order: order of convergence of the global error.
        symplectic: whether the map is symplectic (bounded energy error).
        force_evaluations_per_step: cost of one step in acceleration calls (an attempted
            step, adaptive); None where it varies (IAS15: 7 per predictor-corrector pass,
            about 3 passes a step).
        description: one line for menus and ``--help``.
        color: plot colour, from the colour-blind-safe Okabe-Ito palette (Okabe & Ito 2008).
        adaptive: True when the integrator chooses its own steps (it then has a ``solver``;
            ``solve`` takes ``t_end`` and save times, not ``num_steps``).
        solver: adaptive: ``solver(state, *, save_times, params, acceleration, max_steps, dt,
            chunks, on_chunk, **options) -> Solution``; None for a fixed-step integrator.
        options: ``((name, default), ...)``: the keyword options of ``solve`` only this
            integrator takes (``rtol``, ``epsilon``...); any other is refused in words.
    """

    name: str
    build: Callable[[AccelerationFn], tuple[InitFn, StepFn]] | None
    order: int
    symplectic: bool
    force_evaluations_per_step: int | None
    description: str
    color: str
    adaptive: bool = False
    solver: Callable[..., Any] | None = None
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def kind(self) -> str:
        """``"adaptive"`` or ``"fixed-step"``, for messages."""
        return "adaptive" if self.adaptive else "fixed-step"


INTEGRATORS: Registry[Integrator] = Registry("integrator", record_type=Integrator)


def register_integrator(integrator: Integrator, *, replace: bool = False) -> Integrator:
    """Add ``integrator`` to :data:`INTEGRATORS` under its name (checked: a fixed-step record
    needs ``build``, an adaptive one a ``solver``).

    Raises:
        TypeError: not an :class:`Integrator`.
        ValueError: the name is taken (unless ``replace``), or ``build`` / ``solver`` do not
            match ``adaptive``.
    """
    if isinstance(integrator, Integrator):
        if integrator.adaptive and (integrator.solver is None or integrator.build is not None):
            raise ValueError(f"adaptive integrator {integrator.name!r} needs a solver and no build")
        if not integrator.adaptive and (integrator.build is None or integrator.solver is not None):
            raise ValueError(f"fixed-step integrator {integrator.name!r} needs a build and no solver")
    return INTEGRATORS.register(getattr(integrator, "name", ""), integrator, replace=replace)


for _integrator in (
    Integrator("euler", euler, 1, False, 1, "explicit Euler, order 1 (the cautionary tale)", "#000000"),
    Integrator("leapfrog", leapfrog, 2, True, 1, "leapfrog KDK / velocity Verlet, order 2, symplectic", "#0072B2"),
    Integrator("yoshida4", yoshida4, 4, True, 3, "Yoshida 1990, drift-kick-drift, order 4, symplectic", "#D55E00"),
    Integrator("rk4", rk4, 4, False, 4, "classical Runge-Kutta, order 4, not symplectic", "#009E73"),
    Integrator(
        "yoshida4_kdk", yoshida4_kdk, 4, True, 3, "Yoshida 1990, kick-drift-kick, order 4, symplectic", "#E69F00"
    ),
    # 13 per attempted step: 12 new stages and the derivative at the accepted point.
    Integrator(
        "dopri8", None, 8, False, 13,
        "Dormand-Prince 8(7), adaptive steps, compensated summation (close encounters)", "#CC79A7",
        adaptive=True, solver=solve_dopri8,
        options=(("rtol", DEFAULT_RTOL), ("atol", DEFAULT_ATOL), ("adjoint", "direct")),
    ),
    Integrator(
        "ias15", None, 15, False, None,
        "IAS15, 15th-order Gauss-Radau (Rein & Spiegel 2015), adaptive", "#56B4E9",
        adaptive=True, solver=solve_ias15,
        options=(("epsilon", EPSILON), ("adaptive_mode", "global"), ("adjoint", "direct")),
    ),
):
    register_integrator(_integrator)
del _integrator


def get_integrator(name: str | Integrator) -> Integrator:
    """The :class:`Integrator` record called ``name`` (a record passes through).

    Raises:
        ValueError: ``unknown integrator 'x'; choose one of [...]``.
    """
    return INTEGRATORS.get(name)
