"""Twin-run (chaos) state for the Chaos tab: pure param logic, no Panel.

A system runs beside a copy with one coordinate moved by ``delta``
(:func:`nbody_core.lab.chaos.twin_run`); the tab shows both orbits, their separation on a log
axis and the fitted Lyapunov time, or says that the orbit is regular when the separation grows
as a power of time rather than exponentially (:func:`nbody_core.lab.chaos.growth_is_exponential`).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import param

from nbody_core.lab.chaos import TwinRun, twin_run
from nbody_core.systems.initial_conditions import figure_eight, kepler, kepler_period, plummer, pythagorean
from nbody_core.systems.presets import FIGURE_EIGHT_PERIOD
from nbody_core.physics.state import PhysicsParams

__all__ = ["SYSTEMS", "ChaosState"]

#: Bodies of the Plummer twin: small, so that the pair runs in about a second.
PLUMMER_BODIES = 32

#: system key -> (friendly name, builder, softening, dt, t_end, t_min). Softening 0.05 keeps the
#: Pythagorean near-collision at t ~ 15.8 integrable at a fixed step (tests/nbody_core/test_chaos.py).
#: t_min starts the fit window: the Plummer twin's first time unit is skipped, while the
#: perturbation turns onto the most unstable direction (its Lyapunov time then varies 1.24x
#: at most over delta 1e-9..1e-11 and the perturbed body, against 1.4x from t = 0; measured,
#: tests/nbody_core/test_chaos.py). Plummer: seed 0, yoshida4 energy error 2.7e-5 to t = 10.
SYSTEMS: dict[str, tuple[str, object, float, float, float, float]] = {
    "pythagorean": ("Pythagorean 3-4-5 problem (softened 0.05)", pythagorean, 0.05, 5e-4, 40.0, 0.0),
    "plummer": (f"Plummer sphere, N = {PLUMMER_BODIES} (softened 0.01)",
                lambda: plummer(jax.random.key(0), PLUMMER_BODIES), 0.01, 1e-3, 10.0, 1.0),
    "figure_eight": ("Figure-eight (3 equal masses, regular)", figure_eight, 0.0, 1e-3, 10 * FIGURE_EIGHT_PERIOD, 0.0),
    "kepler": ("Kepler orbit, e = 0.5 (regular)", lambda: kepler(e=0.5), 0.0,
               kepler_period(a=1.0, total_mass=2.0) / 2000, 40 * kepler_period(a=1.0, total_mass=2.0), 0.0),
}

#: The perturbations offered (length units, added to x of body 1).
DELTAS = [1e-6, 1e-8, 1e-9, 1e-10, 1e-12]

#: Saved snapshots per run (plot resolution; the fit uses them all).
NUM_SAVES = 400
#: Compiled calls a twin run is cut into, with the stop check between them: the slowest pair
#: (Plummer, N = 32, 10,000 steps) took 1.8 s in one call here at load ~11, so ~45 ms a piece.
PIECES = 40


class ChaosState(param.Parameterized):
    """What the Chaos tab runs, and its last result."""

    system = param.Selector(default="pythagorean", objects=list(SYSTEMS), doc="Which system runs twice.")
    delta = param.Selector(default=1e-9, objects=DELTAS, doc="Initial offset of body 1's x, N-body length units.")
    result = param.Parameter(default=None, doc="The last TwinRun (None before the first run).")
    error = param.String(default="", doc="Why the last run failed, in words; empty when it did not.")

    @staticmethod
    def system_label(key: str) -> str:
        return SYSTEMS[key][0]

    def settings(self) -> dict:
        """The twin_run arguments for the current choice (step, length, softening)."""
        _, build, softening, dt, t_end, t_min = SYSTEMS[self.system]
        num_steps = int(math.ceil(t_end / dt))
        save_every = max(1, num_steps // NUM_SAVES)
        return dict(state=build(), delta=float(self.delta), dt=dt, num_steps=num_steps,
                    save_every=save_every, params=PhysicsParams(softening=softening), t_min=t_min)

    def compute(self, checkpoint: Callable[[], None] | None = None) -> TwinRun | None:
        """Run the twins (seconds: call off the event loop) in :data:`PIECES` compiled calls,
        ``checkpoint()`` between them (a pool job's: it may raise to stop the run). Returns
        the result, or None with :attr:`error` set when the fit cannot be made."""
        settings = self.settings()
        try:
            return twin_run(settings.pop("state"), chunks=PIECES,
                            on_chunk=None if checkpoint is None else (lambda _done: checkpoint()), **settings)
        except ValueError as error:
            self.error = f"The twins could not be compared: {error}"
            return None

    def run(self) -> TwinRun | None:
        """:meth:`compute` and keep the result."""
        self.error = ""
        result = self.compute()
        if result is not None:
            self.result = result
        return result

    def summary(self) -> str:
        """One line in words: the Lyapunov time and its window, or that the orbit is regular
        (plain text)."""
        run = self.result
        if run is None:
            return "Press Run twins to start."
        fit = run.fit
        growth = run.separation.max() / run.separation[0]
        if fit.regular:
            lead = (f"No exponential growth detected: regular orbit (the separation grows like t^{fit.power:.2f}, "
                    "a power of time, so there is no Lyapunov time).")
        elif math.isinf(fit.lyapunov_time):
            lead = "The separation does not grow exponentially (no Lyapunov time)."
        else:
            lead = (f"Lyapunov time t_L = {fit.lyapunov_time:.3g} time units "
                    f"(the separation grows e-fold every {fit.lyapunov_time:.3g}).")
        return (f"{lead} Fitted over t = {fit.t_start:.3g}–{fit.t_stop:.3g} ({fit.num_points} snapshots); "
                f"the separation grew {growth:.3g}× from δ = {run.delta:g}.")
