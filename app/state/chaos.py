"""Twin-run (chaos) state for the Chaos tab: pure param logic, no Panel.

A system runs beside a copy with one coordinate moved by ``delta``
(:func:`nbody_core.chaos.twin_run`); the tab shows both orbits, their separation on a log
axis and the fitted Lyapunov time.
"""

from __future__ import annotations

import math

import param

from nbody_core.chaos import TwinRun, twin_run
from nbody_core.initial_conditions import figure_eight, kepler, kepler_period, pythagorean
from nbody_core.presets import FIGURE_EIGHT_PERIOD
from nbody_core.state import PhysicsParams

__all__ = ["SYSTEMS", "ChaosState"]

#: system key -> (friendly name, builder, softening, dt, t_end). Softening 0.05 keeps the
#: Pythagorean near-collision at t ~ 15.8 integrable at a fixed step (tests/nbody_core/test_chaos.py).
SYSTEMS: dict[str, tuple[str, object, float, float, float]] = {
    "pythagorean": ("Pythagorean 3-4-5 problem (softened 0.05)", pythagorean, 0.05, 5e-4, 40.0),
    "figure_eight": ("Figure-eight (3 equal masses)", figure_eight, 0.0, 1e-3, 10 * FIGURE_EIGHT_PERIOD),
    "kepler": ("Kepler orbit, e = 0.5 (regular)", lambda: kepler(e=0.5), 0.0,
               kepler_period(a=1.0, total_mass=2.0) / 2000, 40 * kepler_period(a=1.0, total_mass=2.0)),
}

#: The perturbations offered (length units, added to x of body 1).
DELTAS = [1e-6, 1e-8, 1e-9, 1e-10, 1e-12]

#: Saved snapshots per run (plot resolution; the fit uses them all).
NUM_SAVES = 400


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
        _, build, softening, dt, t_end = SYSTEMS[self.system]
        num_steps = int(math.ceil(t_end / dt))
        save_every = max(1, num_steps // NUM_SAVES)
        return dict(state=build(), delta=float(self.delta), dt=dt, num_steps=num_steps,
                    save_every=save_every, params=PhysicsParams(softening=softening))

    def compute(self) -> TwinRun | None:
        """Run the twins (seconds: call off the event loop). Returns the result, or None with
        :attr:`error` set when the fit cannot be made."""
        settings = self.settings()
        try:
            return twin_run(settings.pop("state"), **settings)
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
        """One line in words: the Lyapunov time and its window (plain text)."""
        run = self.result
        if run is None:
            return "Press Run twins to start."
        fit = run.fit
        growth = run.separation.max() / run.separation[0]
        if math.isinf(fit.lyapunov_time):
            lead = "The separation does not grow exponentially (no Lyapunov time)."
        else:
            lead = (f"Lyapunov time t_L = {fit.lyapunov_time:.3g} time units "
                    f"(the separation grows e-fold every {fit.lyapunov_time:.3g}).")
        return (f"{lead} Fitted over t = {fit.t_start:.3g}–{fit.t_stop:.3g} ({fit.num_points} snapshots); "
                f"the separation grew {growth:.3g}× from δ = {run.delta:g}.")
