"""Session state of the Simulate tab: the parameters of one live N-body run.

What belongs here: the parameters (with bounds and docs), preset defaults, which changes
rebuild the run, validation of URL settings and uploads, and the labels derived from them.
The run itself (build, compile, advance, faults, readouts) is
:class:`nbody_explorer.state.simulate_run.LiveRun`, mixed in with
:class:`nbody_explorer.state.simulate_edits.RunEdits` (body edits, predict reveals). Static
configuration (preset, N, seed, integrator, force method, precision) builds a new run and
may compile; ``dt``, ``softening`` and ``steps_per_frame`` are traced by
:func:`nbody_core.advance`, so moving them while playing never recompiles. Display options
(projection, colours, trails) travel to the browser-drawn scene (``app/components``), which
keeps the trails itself; shared-link handling is in :mod:`nbody_explorer.state.links`. No Panel import:
the view and the tests drive this class directly.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache
from typing import Any, Mapping

import jax
import param

from nbody_explorer.limits import LIMITS
from nbody_explorer.state.links import URL_PARAMETERS, link_value, url_values
from nbody_explorer.state.validation import Refused
from nbody_explorer.state.run_messages import ENERGY_WARNING_LEVEL
from nbody_explorer.state.simulate_edits import RunEdits
from nbody_explorer.state.simulate_run import ERROR_FLOOR, HISTORY_POINTS, FrameDiagnostics, LiveRun, RunFault
import nbody_core.defaults as defaults
from nbody_core import FORCE_METHODS, INTEGRATORS, PRESETS, get_integrator, get_preset
from nbody_core.physics.autoselect import resolve_forces
from nbody_core.io import initial_conditions_csv_text, parse_initial_conditions_csv, trajectory_npz_bytes
from nbody_core.physics.pallas_kernels import pallas_interpret_default
from nbody_core.physics.state import DTYPES, ParticleState, PhysicsParams

__all__ = [
    "UPLOADED",
    "DT_CHOICES",
    "SOFTENING_CHOICES",
    "STATIC_SETTINGS",
    "URL_PARAMETERS",
    "SimulationState",
    "preset_label",
    "FrameDiagnostics",
    "RunFault",
    "ENERGY_WARNING_LEVEL",
    "ERROR_FLOOR",
    "HISTORY_POINTS",
]

#: Preset-selector entry for initial conditions uploaded as CSV.
UPLOADED = "uploaded"

#: 1-2-5 ladders for the dt and softening sliders (any other value is still accepted).
DT_CHOICES = tuple(round(m * 10.0**e, 12) for e in range(-6, -1) for m in (1, 2, 5)) + (0.1,)
SOFTENING_CHOICES = (0.0,) + tuple(round(m * 10.0**e, 12) for e in range(-4, 0) for m in (1, 2, 5)) + (1.0,)

#: With an adaptive integrator (ias15, dopri8) ``dt`` is the frame's save interval, not a
#: step: a preset whose default integrator is adaptive opens with the 1-2-5 ladder value of
#: ``dt`` nearest to ``t_end / (steps_per_frame * ADAPTIVE_FRAMES)``, so that its default
#: duration plays in about this many frames (Pythagorean: dt = 5e-3, 1400 frames to t = 70).
ADAPTIVE_FRAMES = 1500
_DTYPES = DTYPES
#: Settings that build a new run (and may compile); the view redraws the scene when one changes.
STATIC_SETTINGS = ("preset", "num_bodies", "seed", "eccentricity", "integrator", "forces", "precision")
_ECCENTRICITY = "eccentricity"  # the registry's name of the Kepler preset's parameter


def _force_options() -> list[str]:
    """Force methods offered: the registry, less Pallas where it would run interpreted (slow)."""
    return [name for name in FORCE_METHODS if name != "pallas" or not pallas_interpret_default()]


class SimulationState(LiveRun, RunEdits, param.Parameterized):
    """One live run for one dashboard session (the run machinery is :class:`LiveRun`).

    Call :meth:`prepare` (compiles if needed; safe in a worker thread) and then
    :meth:`step_frame` per animation frame. Static parameters rebuild the run through
    :meth:`reset`; traced ones apply to the next frame.
    """

    preset = param.Selector(
        default="figure_eight", objects=[*PRESETS, UPLOADED], doc="Initial conditions (core preset or uploaded CSV)."
    )
    num_bodies = param.Integer(
        min(256, LIMITS.max_bodies), bounds=(2, LIMITS.max_bodies), doc="Number of bodies N for scalable presets (Plummer, collapse, disk)."
    )
    seed = param.Integer(0, bounds=(0, 2**31 - 1), doc="PRNG seed of random presets.")
    eccentricity = param.Number(
        0.5, bounds=(0.0, 1.0), inclusive_bounds=(True, False),
        doc="Eccentricity e of the Kepler preset's relative orbit (a = 1, starting at pericentre); other "
        "presets ignore it.",
    )
    integrator = param.Selector(
        default=defaults.FIXED_STEP_INTEGRATOR, objects=list(INTEGRATORS),
        doc="Time integrator: fixed-step (leapfrog, yoshida4, ...) or adaptive (ias15, dopri8; dt is then "
        "the interval between frames, not the step).",
    )
    forces = param.Selector(
        default=defaults.FORCES, objects=_force_options(),
        doc="Force kernel: auto (default: the fastest exact kernel for N, precision and device), "
        "tiled (fast hand-coded), analytic (reference), autodiff (-grad U), autodiff_tiled, tiled_custom_vjp, "
        "pallas (GPU servers only).",
    )
    precision = param.Selector(default="float64", objects=list(_DTYPES), doc="Floating-point precision of the run.")
    dt = param.Number(
        1e-3, bounds=(1e-7, 1.0), inclusive_bounds=(True, True),
        doc="Time step, time units (traced); with an adaptive integrator, the save interval: each frame "
        "advances steps_per_frame x dt in time.",
    )
    softening = param.Number(0.0, bounds=(0.0, 10.0), doc="Plummer softening length, length units (traced).")
    steps_per_frame = param.Integer(
        min(10, LIMITS.max_steps_per_frame), bounds=(1, LIMITS.max_steps_per_frame), doc="Integrator steps per animation frame (traced)."
    )
    frame_rate = param.Integer(30, bounds=(1, 60), doc="Target frames per second (speed of the animation).")
    trails = param.Boolean(True, doc="Draw the recent path of each body.")
    trail_length = param.Integer(
        min(200, LIMITS.max_trail_length), bounds=(2, LIMITS.max_trail_length), doc="Frames of trail kept per body."
    )
    projection = param.Selector(
        default="3d", objects=["3d", "xy", "xz", "yz", "quad"],
        doc="View: rotatable 3D camera, one fixed plane, or all four (quad).",
    )
    color_by = param.Selector(default="mass", objects=["mass", "speed"], doc="Colour bodies by mass or speed.")
    size_by_mass = param.Boolean(True, doc="Draw heavier bodies larger.")

    def __init__(self, **params):
        super().__init__(**params)
        # Read the registries per session: a record added there is an option here.
        self.param.integrator.objects = list(INTEGRATORS)
        self.param.forces.objects = _force_options()
        self._uploaded: ParticleState | None = None
        self._uploaded_name = ""
        self._uploaded_time = 0.0
        self._generation = 0
        self._lock = threading.RLock()
        self._suspend = False
        self._changed_while_suspended: set[str] = set()
        self._keep: set[str] = set()
        self._apply_preset_defaults(self.preset, keep=set(params))
        self.reset()
        self.param.watch(self._on_static_change, list(STATIC_SETTINGS))

    # ----------------------------------------------------------------- configuration
    @property
    def dtype(self):
        return _DTYPES[self.precision]

    @property
    def resolved_forces(self) -> str:
        """The kernel that runs: ``forces`` itself, or what ``"auto"`` picks for N, precision
        and this server's device (``nbody_core.physics.autoselect``)."""
        return resolve_forces(self.forces, n=self.body_count, dtype=self.dtype)

    @property
    def adaptive(self) -> bool:
        """True when the integrator is adaptive (``dt`` is then the frame's save interval)."""
        return get_integrator(self.integrator).adaptive

    @property
    def body_count(self) -> int:
        """N of the run: the built run's (an edit may change it), else what these settings
        build, known without building it (no JAX: safe on the event loop)."""
        current = self._current
        if current is not None:
            return current.num_bodies
        if self.preset == UPLOADED:
            return self._uploaded.num_bodies if self._uploaded is not None else 0
        preset = get_preset(self.preset)
        return self.num_bodies if preset.scalable else preset.num_bodies

    @property
    def units(self) -> str:
        """Unit system of the run (``nbody_core.physics.units`` name), known without building it."""
        if self.preset == UPLOADED:
            return self._uploaded.units if self._uploaded is not None else "nbody"
        return get_preset(self.preset).units

    @property
    def scalable(self) -> bool:
        return self.preset != UPLOADED and get_preset(self.preset).scalable

    @property
    def physics_params(self) -> PhysicsParams:
        """Traced parameters as Python floats: the same (weakly typed) jit signature on
        every call, whatever the precision, so a new softening never recompiles."""
        base = self._base_params
        return PhysicsParams(
            float(base.G), float(self.softening), float(base.screening_length), float(base.power_index)
        )

    @property
    def description(self) -> str:
        if self.preset == UPLOADED:
            return f"uploaded initial conditions ({self._uploaded_name}, N = {self.body_count})"
        preset = get_preset(self.preset)
        shape = f", e = {self.eccentricity:g}" if self.has_eccentricity else ""
        return f"{preset.description} (N = {self.body_count}{shape}, units: {preset.units})"

    @property
    def has_eccentricity(self) -> bool:
        """Whether the preset takes :attr:`eccentricity` (Kepler)."""
        return self.preset != UPLOADED and _ECCENTRICITY in get_preset(self.preset).parameter_names

    def _apply_preset_defaults(self, name: str, keep: set[str] = frozenset()) -> None:
        if name == UPLOADED:
            self._base_params = PhysicsParams()
            return
        preset = get_preset(name)
        self._base_params = preset.params
        updates = {"integrator": preset.integrator, "dt": preset.dt, "softening": float(preset.params.softening)}
        if preset.scalable:
            updates["num_bodies"] = min(preset.default_num_bodies, LIMITS.max_bodies)
        if get_integrator(preset.integrator).adaptive:
            steps = self.steps_per_frame if "steps_per_frame" in keep else self.param.steps_per_frame.default
            target = preset.t_end / (steps * ADAPTIVE_FRAMES)
            updates["dt"] = min(DT_CHOICES, key=lambda choice: abs(math.log(choice / target)))
        updates = {k: v for k, v in updates.items() if k not in keep}
        self.param.update(**updates)

    def _on_static_change(self, *events) -> None:
        if self._suspend:
            # A preset's defaults are being applied: their own events land here. Another preset
            # set meanwhile (by a watcher of those defaults: a widget, the URL sync) is noted:
            # swallowed, it left the new preset's dt and softening on the old preset's run.
            self._changed_while_suspended.update(event.name for event in events)
            return
        names = {event.name for event in events}
        if "preset" in names:
            self._suspend = True
            self._changed_while_suspended.clear()
            try:
                if self.preset == UPLOADED and self._uploaded is None:
                    self.preset = next(e.old for e in events if e.name == "preset")
                    raise ValueError("no initial conditions have been uploaded yet: upload a CSV file first")
                self._apply_preset_defaults(self.preset, keep=self._keep)
                for _ in range(len(PRESETS) + 1):  # the preset changed again: its defaults, once settled
                    if "preset" not in self._changed_while_suspended:
                        break
                    self._changed_while_suspended.clear()
                    self._apply_preset_defaults(self.preset, keep=self._keep)
            finally:
                self._suspend = False
                self._changed_while_suspended.clear()
        if names == {"num_bodies"} and not self.scalable:
            return  # N only matters for scalable presets
        if names == {"seed"} and self.preset in ("figure_eight", "kepler", "pythagorean", "solar_system", UPLOADED):
            return
        if names == {"eccentricity"} and not self.has_eccentricity:
            return
        self.reset()

    def apply_settings(self, settings: Mapping[str, Any], *, keys: Mapping[str, str] = URL_PARAMETERS) -> list[str]:
        """Apply URL-style settings one by one; return a message for each rejected one.

        Args:
            settings: query key -> value (strings as they come from a URL, or typed values).
            keys: parameter name -> query key (:data:`URL_PARAMETERS`).

        Returns:
            ``"key=value: reason"`` for every value that was not applied (the previous value
            is kept), in :data:`URL_PARAMETERS` order.
        """
        rejected, updates, given = [], {}, set()
        for name, key in keys.items():
            if key not in settings:
                continue
            raw = settings[key]
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8", "replace")
            try:
                value = self.checked_setting(name, raw)
                if name == "preset" and value == UPLOADED and self._uploaded is None:
                    raise Refused("Preset “uploaded” needs a CSV file uploaded in this session first; "
                                  f"kept {self.preset}.")
            except Refused as error:
                rejected.append(f"{key}={str(raw)[:40]!s}: {error}")
                continue
            given.add(name)
            if value != getattr(self, name):
                updates[name] = value
        # One batch: a preset plus its N, dt, ... rebuilds the run once, and the values given
        # here win over the preset's defaults, also one equal to the current value (a lesson
        # step's dt = 0.01 after a run at 0.01 became the new preset's default 0.001).
        self._keep = given
        try:
            self.param.update(**updates)
        finally:
            self._keep = set()
        return rejected

    def checked_setting(self, name: str, raw: Any):
        """``raw`` (a link's text, a widget's value) checked for setting ``name`` at the one
        validation boundary (:mod:`nbody_explorer.state.validation`), with this run's units.

        Raises:
            Refused: in the sidebar's words ("Bodies N must be a whole number from 2 to 5000; kept 64.").
        """
        time_unit, length_unit = (" yr", " AU") if self.units == "au_msun_yr" else (" time units", " length units")
        return link_value(self, name, raw, units={"dt": time_unit, "softening": length_unit})

    def url_settings(self) -> dict[str, str]:
        """The current settings as URL query values (inverse of :meth:`apply_settings`)."""
        return url_values(self, URL_PARAMETERS)

    # ----------------------------------------------------------------- the run
    def _initial_time(self) -> float:
        """Start time of the run these settings build, known without building it."""
        return self._uploaded_time if self.preset == UPLOADED else 0.0

    def _initial_state(self) -> ParticleState:
        if self.preset == UPLOADED:
            return self._uploaded
        preset = get_preset(self.preset)
        n = self.num_bodies if preset.scalable else None
        shape = {_ECCENTRICITY: float(self.eccentricity)} if self.has_eccentricity else {}
        return preset.build(jax.random.key(self.seed), n, **shape)

    # ----------------------------------------------------------------- files
    def load_csv(self, data: bytes | str, *, filename: str = "upload.csv") -> None:
        """Replace the initial conditions by an uploaded CSV (``m,x,y,z,vx,vy,vz``) and reset.

        Raises:
            ValueError: naming the problem; the current run is kept unchanged.
        """
        if len(data) > LIMITS.max_upload_bytes:
            raise ValueError(f"CSV file is {len(data)} bytes; this server accepts at most {LIMITS.max_upload_bytes}")
        state = parse_initial_conditions_csv(data, max_bodies=LIMITS.max_bodies)
        self._uploaded = state
        self._uploaded_name = filename
        self._uploaded_time = float(state.time)
        if self.preset == UPLOADED:
            self.reset()
        else:
            self.preset = UPLOADED

    def state_csv(self) -> str:
        """The current state as CSV text in the upload format."""
        return initial_conditions_csv_text(self.current)

    def trajectory_npz(self) -> bytes:
        """npz bytes of :meth:`trajectory` with this run's settings as metadata."""
        return trajectory_npz_bytes(self.trajectory(), {**self.url_settings(), "description": self.description})


@lru_cache(maxsize=None)
def preset_label(name: str) -> str:
    """The preset selector's label for ``name``, e.g. 'Plummer (N = 256+)', 'Kepler (2 bodies)'."""
    if name == UPLOADED:
        return "Uploaded CSV"
    preset = PRESETS[name]
    size = f"N = {preset.default_num_bodies}+" if preset.scalable else f"{preset.num_bodies} bodies"
    return f"{name.replace('_', ' ').capitalize()} ({size})"


