"""The Simulate tab's sidebar: its widgets, their two-way links to the state, and their layout.

What belongs here: building each control of :class:`~nbody_explorer.state.simulate.SimulationState`
(buttons, preset / N / seed, numerics, display options, upload and downloads), binding
widget values to state parameters (a refused value is named and undone), the dt and
softening 1-2-5 ladders and unit-aware labels, and the sidebar's cards. What does not: the
run and frame loop, drawing, the status line (all in :mod:`nbody_explorer.views.simulate`). Play, Step,
Reset and Upload are wired by the view, which owns what they start.
"""

from __future__ import annotations

import io
from functools import partial
from typing import Callable

import panel as pn
import param

from nbody_explorer.compat.accessibility import speak_discrete_slider
from nbody_explorer.limits import LIMITS, safe_filename
from nbody_explorer.runtime.messages import public_text
from nbody_explorer.state.simulate import DT_CHOICES, SOFTENING_CHOICES, UPLOADED, SimulationState, preset_label

__all__ = ["SimulateControls", "WIDGET_NAMES", "forces_label", "preset_distance_scale"]

#: Widgets of the sidebar that :class:`~nbody_explorer.views.simulate.SimulateView` also exposes under
#: the same attribute name (tests, keyboard shortcuts and the lessons drive them there).
WIDGET_NAMES = (
    "play_button", "step_button", "reset_button", "preset_select", "num_bodies_input", "seed_input",
    "eccentricity_input",
    "integrator_select", "force_select", "precision_select", "dt_slider", "softening_slider", "steps_slider",
    "speed_slider", "trails_switch", "trail_slider", "projection_select", "color_select", "size_switch",
    "follow_switch", "distance_select", "fit_button", "upload", "download_state", "download_trajectory",
)


def preset_distance_scale(preset: str) -> str:
    """The scene's distance scale a preset opens with: the solar system's inner planets (0.4-1.5
    AU) are drawn 2-5 px from the Sun beside Neptune (30 AU) to scale, 50+ px on the log scale;
    the other presets' orbits are of one size and drawn to scale."""
    return "log" if preset == "solar_system" else "linear"

def _ladder_options(choices, value) -> list[float]:
    return sorted({*choices, float(value)})


def unit_words(state: SimulationState) -> tuple[str, str]:
    """``(time, length)`` unit names of the run, for labels: years and AU for the solar system."""
    return ("yr", "AU") if state.units == "au_msun_yr" else ("time units", "length units")


def _dt_label(state: SimulationState) -> str:
    """The dt slider's label: a step for fixed-step integrators, the frame's save interval
    (steps per frame x dt of simulated time per frame) for adaptive ones; with its unit."""
    time_unit = unit_words(state)[0]
    return f"dt (save interval, {time_unit}; adaptive steps)" if state.adaptive else f"dt (time step, {time_unit})"


def _softening_label(state: SimulationState) -> str:
    return f"Softening ε ({unit_words(state)[1]})"


def forces_label(state: SimulationState) -> str:
    """``auto → tiled_custom_vjp``: the chosen method and the kernel it runs (registry names)."""
    resolved = state.resolved_forces
    return state.forces if resolved == state.forces else f"{state.forces} → {resolved}"


class SimulateControls(pn.viewable.Viewer):
    """The sidebar of one Simulate view.

    Args:
        state: the run whose parameters the widgets edit.
        scene: the orbit scene (its camera controls: follow the centre of mass, fit).
        recorder: the Record panel, shown in its own card.
        editor: the body editor (app/views/body_editor.py), shown in a card under Play, or None.
        notify: ``notify(text, level=...)`` shows a message in the tab (refused values).
        served: True when served (a download before the run is ready is refused, not computed).
    """

    state = param.ClassSelector(class_=SimulationState, doc="The run whose parameters these widgets edit.")

    def __init__(self, state: SimulationState, *, scene, recorder, notify: Callable[..., None],
                 served: bool, editor=None, **params):
        super().__init__(state=state, **params)
        self._notify = notify
        self._served = served
        self._build_widgets(scene)
        self._layout = self._build_layout(recorder, editor)
        state.param.watch(lambda *_: setattr(self.dt_slider, "name", _dt_label(self.state)), ["integrator", "preset"])
        state.param.watch(lambda *_: setattr(self.softening_slider, "name", _softening_label(self.state)), ["preset"])
        state.param.watch(self._sync_ladders, ["dt", "softening"])

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self, scene) -> None:
        state = self.state
        self.play_button = pn.widgets.Toggle(label="▶ Play", color="success", width=110, height=42)
        self.step_button = pn.widgets.Button(label="Step", color="primary", width=80, height=42)
        self.reset_button = pn.widgets.Button(label="Reset", color="warning", width=80, height=42)

        doc = lambda name: state.param[name].doc  # noqa: E731
        self.preset_select = pn.widgets.Select(
            label="Preset", value=state.preset, description=doc("preset"),
            options={preset_label(name): name for name in state.param.preset.objects},
        )
        # Bodies N and Seed share one row of the 330 px sidebar (two default-width boxes put Seed at
        # x = 355 px, under the orbit view), shown only for presets whose N is free: a preset
        # with a fixed count showed a greyed-out 256 for 2, 3 or 9 bodies (issue 14).
        self.num_bodies_input = pn.widgets.IntInput(
            label="Bodies N", value=state.num_bodies, start=2, end=LIMITS.max_bodies, step=1,
            disabled=not state.scalable, width=135,
        )
        # N triggers a rebuild (and possibly a compile): apply it on Enter / blur, not per key.
        self.num_bodies_input.param.watch(self._on_num_bodies_widget, "value")
        self.seed_input = pn.widgets.IntInput(
            label="Seed", value=state.seed, start=0, end=2**31 - 1, disabled=not state.scalable, description=doc("seed"),
            width=135,
        )
        self.counts_row = pn.Row(self.num_bodies_input, self.seed_input, visible=state.scalable)
        # Kepler only: e >= 0.9 shows why a fixed step fails at pericentre (the dt lesson).
        self.eccentricity_input = pn.widgets.FloatInput(
            label="Eccentricity e", value=state.eccentricity, start=0.0, end=0.99, step=0.05, width=135,
            description=doc("eccentricity"), visible=state.has_eccentricity,
        )
        self.integrator_select = pn.widgets.Select(
            label="Integrator", value=state.integrator, options=list(state.param.integrator.objects),
            description=doc("integrator"),
        )
        self.force_select = pn.widgets.Select(
            label="Force method", value=state.forces, options=list(state.param.forces.objects),
            description=doc("forces"),
        )
        self.precision_select = pn.widgets.RadioButtonGroup(
            value=state.precision, options=list(state.param.precision.objects)
        )
        self.dt_slider = pn.widgets.DiscreteSlider(
            label=_dt_label(state), options=_ladder_options(DT_CHOICES, state.dt), value=float(state.dt),
            css_classes=["nbody-dt-slider"],
            formatter="%.3g",
        )
        self.softening_slider = pn.widgets.DiscreteSlider(
            label=_softening_label(state), options=_ladder_options(SOFTENING_CHOICES, state.softening),
            css_classes=["nbody-softening-slider"],
            value=float(state.softening), formatter="%.3g",
        )
        # Screen readers hear the label and "0.001 time units", not "slider" and an option index.
        speak_discrete_slider(self.dt_slider, unit=lambda: unit_words(self.state)[0])
        speak_discrete_slider(self.softening_slider, unit=lambda: unit_words(self.state)[1])
        self.dt_slider.param.watch(partial(self._to_state, self.dt_slider, "dt"), "value")
        self.softening_slider.param.watch(partial(self._to_state, self.softening_slider, "softening"), "value")
        self.steps_slider = pn.widgets.IntSlider(
            label="Steps per frame", value=state.steps_per_frame, start=1, end=LIMITS.max_steps_per_frame
        )
        self.speed_slider = pn.widgets.IntSlider(label="Speed (frames/s)", value=state.frame_rate, start=1, end=60)
        self.trails_switch = pn.widgets.Checkbox(label="Trails", value=state.trails)
        self.trail_slider = pn.widgets.IntSlider(
            label="Trail length (frames)", value=state.trail_length, start=2, end=LIMITS.max_trail_length
        )
        self.projection_select = pn.widgets.RadioButtonGroup(
            value=state.projection, options=list(state.param.projection.objects)
        )
        self.color_select = pn.widgets.RadioButtonGroup(value=state.color_by, options=list(state.param.color_by.objects))
        self.size_switch = pn.widgets.Checkbox(label="Size by mass", value=state.size_by_mass)
        self.follow_switch = pn.widgets.Checkbox.from_param(scene.param.follow_com, name="Follow centre of mass")
        self.distance_select = pn.widgets.RadioButtonGroup.from_param(
            scene.param.distance_scale, options={"to scale": "linear", "log scale": "log"}, name="Distances",
            description="Draw distances from the centre to scale, or on a log scale so that inner orbits "
                        "show beside outer ones (the solar system's default)")
        self.fit_button = pn.widgets.Button(label="Fit view", color="primary", variant="outline", width=90,
                                            description="Fit the camera to the bodies (or double-click the scene)")
        self.fit_button.on_click(lambda _: scene.param.trigger("refit"))
        for widget, name in (
            (self.preset_select, "preset"), (self.seed_input, "seed"), (self.eccentricity_input, "eccentricity"),
            (self.integrator_select, "integrator"),
            (self.force_select, "forces"), (self.precision_select, "precision"),
            (self.steps_slider, "steps_per_frame"), (self.speed_slider, "frame_rate"), (self.trails_switch, "trails"),
            (self.trail_slider, "trail_length"), (self.projection_select, "projection"),
            (self.color_select, "color_by"), (self.size_switch, "size_by_mass"),
        ):
            self._bind(widget, name)

        self.upload = pn.widgets.FileInput(accept=".csv,text/csv", multiple=False, label="Upload CSV")
        self.download_state = pn.widgets.FileDownload(
            callback=self._state_csv_file, filename="state.csv", label="State (CSV)", color="primary",
            variant="outline", width=130, embed=False,
        )
        self.download_trajectory = pn.widgets.FileDownload(
            callback=self._trajectory_file, filename="trajectory.npz", label="Trajectory (npz)",
            color="primary", variant="outline", width=150, embed=False,
        )
        self.update_filenames()

    def _build_layout(self, recorder, editor=None):
        label = partial(pn.pane.Markdown, margin=(4, 10, -8, 10))
        return pn.Column(
            pn.Row(self.play_button, self.step_button, self.reset_button),
            *([pn.Card(editor, title="Edit bodies", collapsible=True, sizing_mode="stretch_width")] if editor is not None else []),
            self.speed_slider,
            self.steps_slider,
            pn.Card(
                self.preset_select, self.counts_row, self.eccentricity_input,
                label("Upload initial conditions (m,x,y,z,vx,vy,vz)"), self.upload,
                title="System", collapsible=True, sizing_mode="stretch_width",
            ),
            pn.Card(
                self.integrator_select, self.force_select, label("Precision"), self.precision_select,
                self.dt_slider, self.softening_slider,
                title="Numerics", collapsible=True, sizing_mode="stretch_width",
            ),
            pn.Card(
                pn.Row(self.trails_switch, self.size_switch), self.trail_slider,
                label("View (3D: drag to rotate, wheel to zoom, double-click to fit)"), self.projection_select,
                pn.Row(self.follow_switch, self.fit_button), label("Distances"), self.distance_select,
                label("Colour by"), self.color_select,
                title="Display", collapsible=True, sizing_mode="stretch_width",
            ),
            pn.Card(
                pn.Row(self.download_state, self.download_trajectory),
                title="Download", collapsible=True, sizing_mode="stretch_width",
            ),
            pn.Card(recorder, title="Record a movie", collapsible=True, collapsed=True, sizing_mode="stretch_width"),
            width=330,
            scroll=True,
            sizing_mode="stretch_height",
        )

    def _bind(self, widget, name: str) -> None:
        """Two-way link between ``widget.value`` and ``state.<name>``. Every value from the page
        passes the one validation boundary (a tampered client can send anything): a refused
        one is named in the sidebar's words and undone on screen (and so in the URL)."""

        def to_widget(event):
            if widget.value != event.new:
                widget.value = event.new

        widget.param.watch(partial(self._to_state, widget, name), "value")
        self.state.param.watch(to_widget, name)

    def _to_state(self, widget, name: str, event) -> None:
        if event.new is None or event.new == getattr(self.state, name):
            return
        try:
            setattr(self.state, name, self.state.checked_setting(name, event.new))
        except (ValueError, TypeError) as error:  # Refused, or a setting the state itself refuses now
            self._notify(public_text(error, fallback=f"{widget.label or name}: that value is not allowed here; "
                                                     f"kept {getattr(self.state, name)}."))
            if name in ("dt", "softening"):
                self._set_ladder(name, getattr(self.state, name))
            else:
                widget.value = getattr(self.state, name)

    # ------------------------------------------------------------------ following the state
    def refresh(self) -> None:
        """Bring the controls that depend on the whole run up to date (after a rebuild)."""
        state = self.state
        self._set_ladder("dt", state.dt)
        self._set_ladder("softening", state.softening)
        self.num_bodies_input.disabled = not state.scalable
        self.seed_input.disabled = not state.scalable
        self.counts_row.visible = state.scalable
        self.eccentricity_input.visible = state.has_eccentricity
        if self.num_bodies_input.value != state.num_bodies:
            self.num_bodies_input.value = state.num_bodies
        self.update_filenames()

    def show_playing(self, playing: bool) -> None:
        self.play_button.label = "Pause" if playing else "▶ Play"
        self.play_button.color = "danger" if playing else "success"

    def _sync_ladders(self, *events) -> None:
        # A preset sets dt and softening in one update: both events arrive in one call.
        for event in events:
            self._set_ladder(event.name, event.new)

    def _set_ladder(self, name: str, value: float) -> None:
        slider, choices = (self.dt_slider, DT_CHOICES) if name == "dt" else (self.softening_slider, SOFTENING_CHOICES)
        value = float(value)
        if value not in slider.options:
            slider.options = _ladder_options(choices, value)
        if slider.value != value:
            slider.value = value

    def _on_num_bodies_widget(self, event) -> None:
        self._to_state(self.num_bodies_input, "num_bodies", event)

    # ------------------------------------------------------------------ files
    def update_filenames(self) -> None:
        stem = self.state.preset if self.state.preset != UPLOADED else "uploaded"
        self.download_state.filename = safe_filename(f"nbody_{stem}_state", suffix=".csv")
        self.download_trajectory.filename = safe_filename(f"nbody_{stem}_trajectory", suffix=".npz")

    def _refuse_while_preparing(self, ready: bool) -> None:
        """Downloads run on the event loop: no JAX there. Until the run is built and
        prepared on the pool (a second or two) a served download is refused, not computed."""
        if not ready and self._served:
            text = "The run is still being prepared: download again in a moment."
            self._notify(text, level="info")
            raise ValueError(text)

    def _state_csv_file(self) -> io.BytesIO:
        self._refuse_while_preparing(self.state.built)
        return io.BytesIO(self.state.state_csv().encode())

    def _trajectory_file(self) -> io.BytesIO:
        self._refuse_while_preparing(self.state.ready)
        if not self.state.ready:
            self.state.prepare()
        return io.BytesIO(self.state.trajectory_npz())
