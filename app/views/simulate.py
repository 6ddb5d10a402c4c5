"""Simulate tab: the live orbit view, streaming conservation plots and their controls.

Per-frame drawing goes through Bokeh ``ColumnDataSource`` updates in ``pn.pane.Bokeh``
(measured 23-29 updates/s here, against ~3/s for a HoloViews overlay, see NOTES.md). The
frame loop is one periodic callback per session, stopped when the session is destroyed;
JAX compiles in a worker thread while the status line says "compiling…". Bokeh models the
browser tests read are named ``simulate-*``.
"""

from __future__ import annotations

import html
import io
import logging
import re
import threading
import time
from functools import lru_cache, partial

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, LinearColorMapper, Range1d
from bokeh.palettes import Plasma256
from bokeh.plotting import figure

from app.limits import LIMITS, safe_filename
from app.views._common import locked, run_locked, show_message
from nbody_core import PRESETS
from app.state.simulate import (
    DT_CHOICES,
    ERROR_FLOOR,
    HISTORY_POINTS,
    SOFTENING_CHOICES,
    UPLOADED,
    URL_PARAMETERS,
    SimulationState,
)

__all__ = ["SimulateView"]

_LOG = logging.getLogger(__name__)

_PALETTE = Plasma256[90:]  # magenta to yellow: every colour stands out on the dark background
_BACKGROUND = "#0b1221"
_FEW_COLORS = ("#ff7f0e", "#2ca9e1", "#7fd34e", "#e377c2", "#bcbd22", "#17becf", "#f7b6d2", "#c5b0d5", "#ffbb78", "#98df8a")
_LINE_COLORS = {"energy": "#d62728", "momentum": "#1f77b4", "angular": "#2ca02c"}
_STATUS_INTERVAL_S = 0.25  # status line refresh period while playing
# The status pane renders in its own shadow root: its stylesheet is attached to it.
_STATUS_CSS = """
:host { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 1.2rem;
  padding: 4px 12px; border-radius: 6px; background: #eef2f7; color: #13294b; }
.compiling { color: #ffffff; background: #b45309; padding: 1px 8px; border-radius: 4px; font-weight: 700; }
.playing { color: #15803d; font-weight: 700; }
.paused { color: #475569; font-weight: 700; }
.warning { color: #b91c1c; font-weight: 700; }
"""


_READING_GUIDE = """
**Reading the plots.** Symplectic integrators (leapfrog, yoshida4) keep the energy error
bounded: it oscillates with the orbit instead of drifting; *euler* drifts away. Doubling dt
multiplies the leapfrog error by about 4 (second order) and the yoshida4 error by about 16.
Linear momentum is conserved to round-off by every integrator here; angular momentum
exactly only by the symplectic ones (compare euler or rk4). Try float32 to see round-off.
"""


def _ladder_options(choices, value) -> list[float]:
    return sorted({*choices, float(value)})


class SimulateView(pn.viewable.Viewer):
    """Live simulation of one :class:`~app.state.simulate.SimulationState` per session.

    Args:
        state: the run to display (a new one by default).
        sync_url: mirror the settings in the page URL (served sessions only).
    """

    state = param.ClassSelector(class_=SimulationState, doc="The run shown by this view.")
    playing = param.Boolean(False, doc="Whether the animation loop is running.")
    compiling = param.Boolean(False, doc="True while JAX compiles the frame function.")

    def __init__(self, state: SimulationState | None = None, *, sync_url: bool = True, **params):
        super().__init__(state=state or SimulationState(), **params)
        self._doc = pn.state.curdoc
        self._served = bool(self._doc is not None and getattr(self._doc, "session_context", None))
        self._lock_doc = self._doc if self._served else None  # callbacks that draw run under its lock
        self._callback = None
        self._worker: threading.Thread | None = None
        self._stop_event: threading.Event | None = None
        self._destroyed = False
        self._frame_times: list[float] = []
        self._last_status = 0.0
        self.last_message = ""  # unescaped text of the latest message (for tests and logs)
        self._warned_generation = -1  # run generation whose energy warning was shown
        self._build_plots()
        self._build_widgets()
        self._layout = self._build_layout()
        if sync_url and self._served:
            self._sync_url()
        self.state.param.watch(self._on_rebuilt, ["preset", "num_bodies", "seed", "integrator", "force_method", "precision"])
        self.state.param.watch(self._on_display_change, ["projection", "color_by", "size_by_mass", "trails", "trail_length"])
        self.state.param.watch(self._on_frame_rate, ["frame_rate"])
        self.state.param.watch(self._sync_ladders, ["dt", "softening"])
        self.state.param.watch(lambda *_: self._update_status(force=True), ["dt", "softening", "steps_per_frame"])
        self.param.watch(self._on_playing, ["playing"])
        if self._served:
            pn.state.on_session_destroyed(self._on_session_destroyed)
        self._redraw_all()
        self._ensure_ready()

    # ------------------------------------------------------------------ plots
    def _build_plots(self) -> None:
        state = self.state
        self.body_source = ColumnDataSource(state.body_columns(), name="simulate-bodies")
        self.trail_source = ColumnDataSource(self._trail_data(), name="simulate-trails")
        self.history_source = ColumnDataSource(
            {"t": [], "energy_error": [], "momentum_error": [], "angular_momentum_error": []},
            name="simulate-history",
        )
        mapper = LinearColorMapper(palette=_PALETTE, low=0.0, high=1.0)
        extent = state.extent()
        orbit = figure(
            name="simulate-orbit",
            x_range=Range1d(-extent, extent),
            y_range=Range1d(-extent, extent),
            match_aspect=True,
            aspect_ratio=1,
            sizing_mode="scale_height",
            min_height=420,
            tools="pan,wheel_zoom,box_zoom,reset,save",
            active_scroll="wheel_zoom",
            background_fill_color=_BACKGROUND,
            border_fill_color="white",
            output_backend="canvas",
        )
        orbit.grid.grid_line_color = "#24304a"
        orbit.multi_line("xs", "ys", source=self.trail_source, line_width=2, line_alpha=0.6, line_color="line_color")
        bodies = orbit.scatter(
            "x", "y", size="size", source=self.body_source,
            fill_color={"field": "color", "transform": mapper}, line_color="white", line_width=0.6,
        )
        orbit.add_tools(HoverTool(renderers=[bodies], tooltips=[("mass", "@mass{0.000e}"), ("speed", "@speed{0.000}")]))
        self._orbit = orbit

        def _diagnostic_figure(name, title, y_label):
            fig = figure(
                name=name, title=title, y_axis_type="log", height=250, sizing_mode="stretch_width",
                tools="pan,wheel_zoom,box_zoom,reset,save", x_axis_label="time", y_axis_label=y_label,
            )
            fig.title.text_font_size = "15px"
            fig.xaxis.axis_label_text_font_size = fig.yaxis.axis_label_text_font_size = "14px"
            fig.xaxis.major_label_text_font_size = fig.yaxis.major_label_text_font_size = "12px"
            return fig

        energy = _diagnostic_figure("simulate-energy", "Relative energy error |E − E₀| / |E₀|", "|ΔE / E₀|")
        energy.line("t", "energy_error", source=self.history_source, line_width=2, color=_LINE_COLORS["energy"])
        momentum = _diagnostic_figure("simulate-momentum", "Momentum and angular-momentum error", "relative error")
        momentum.line("t", "momentum_error", source=self.history_source, line_width=2,
                      color=_LINE_COLORS["momentum"], legend_label="|ΔP| / Σ m|v₀|")
        momentum.line("t", "angular_momentum_error", source=self.history_source, line_width=2,
                      color=_LINE_COLORS["angular"], legend_label="|ΔL| / Σ m|r₀×v₀|")
        momentum.legend.location = "bottom_right"
        momentum.legend.background_fill_alpha = 0.7
        momentum.legend.label_text_font_size = "12px"
        momentum.legend.padding = momentum.legend.spacing = 2
        self._energy_figure, self._momentum_figure = energy, momentum
        self._orbit_pane = pn.pane.Bokeh(orbit, sizing_mode="stretch_both", min_height=420)
        self._energy_pane = pn.pane.Bokeh(energy, sizing_mode="stretch_width")
        self._momentum_pane = pn.pane.Bokeh(momentum, sizing_mode="stretch_width")

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        state = self.state
        self.play_button = pn.widgets.Toggle(label="▶ Play", color="success", width=110, height=42)
        self.play_button.link(self, value="playing", bidirectional=True)
        self.step_button = pn.widgets.Button(label="Step", color="primary", width=80, height=42)
        self.reset_button = pn.widgets.Button(label="Reset", color="warning", width=80, height=42)
        self.step_button.on_click(locked(self._lock_doc, lambda _: self.step()))
        self.reset_button.on_click(locked(self._lock_doc, lambda _: self.reset()))

        doc = lambda name: state.param[name].doc  # noqa: E731
        self.preset_select = pn.widgets.Select(
            label="Preset", value=state.preset, description=doc("preset"),
            options={_preset_label(name): name for name in state.param.preset.objects},
        )
        self.num_bodies_input = pn.widgets.IntInput(
            label="Bodies N", value=state.num_bodies, start=2, end=LIMITS.max_bodies, step=1,
            disabled=not state.scalable,
        )
        # N triggers a rebuild (and possibly a compile): apply it on Enter / blur, not per key.
        self.num_bodies_input.param.watch(self._on_num_bodies_widget, "value")
        self.seed_input = pn.widgets.IntInput(
            label="Seed", value=state.seed, start=0, end=2**31 - 1, disabled=not state.scalable, description=doc("seed")
        )
        self.integrator_select = pn.widgets.Select(
            label="Integrator", value=state.integrator, options=list(state.param.integrator.objects),
            description=doc("integrator"),
        )
        self.force_select = pn.widgets.Select(
            label="Force method", value=state.force_method, options=list(state.param.force_method.objects),
            description=doc("force_method"),
        )
        self.precision_select = pn.widgets.RadioButtonGroup(
            value=state.precision, options=list(state.param.precision.objects)
        )
        self.dt_slider = pn.widgets.DiscreteSlider(
            label="dt (time step)", options=_ladder_options(DT_CHOICES, state.dt), value=float(state.dt),
            css_classes=["nbody-dt-slider"],
            formatter="%.3g",
        )
        self.softening_slider = pn.widgets.DiscreteSlider(
            label="Softening ε", options=_ladder_options(SOFTENING_CHOICES, state.softening),
            css_classes=["nbody-softening-slider"],
            value=float(state.softening), formatter="%.3g",
        )
        self.dt_slider.param.watch(lambda event: setattr(self.state, "dt", float(event.new)), "value")
        self.softening_slider.param.watch(lambda event: setattr(self.state, "softening", float(event.new)), "value")
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
        for widget, name in (
            (self.preset_select, "preset"), (self.seed_input, "seed"), (self.integrator_select, "integrator"),
            (self.force_select, "force_method"), (self.precision_select, "precision"),
            (self.steps_slider, "steps_per_frame"), (self.speed_slider, "frame_rate"), (self.trails_switch, "trails"),
            (self.trail_slider, "trail_length"), (self.projection_select, "projection"),
            (self.color_select, "color_by"), (self.size_switch, "size_by_mass"),
        ):
            self._bind(widget, name)

        self.upload = pn.widgets.FileInput(accept=".csv,text/csv", multiple=False, label="Upload CSV")
        # An empty file arrives as value None with a file name: watch both.
        self.upload.param.watch(locked(self._lock_doc, self._on_upload), ["value", "filename"])
        self.download_state = pn.widgets.FileDownload(
            callback=self._state_csv_file, filename="state.csv", label="State (CSV)", color="primary",
            variant="outline", width=130, embed=False,
        )
        self.download_trajectory = pn.widgets.FileDownload(
            callback=self._trajectory_file, filename="trajectory.npz", label="Trajectory (npz)",
            color="primary", variant="outline", width=150, embed=False,
        )
        self.status = pn.pane.HTML(
            "", css_classes=["nbody-status"], stylesheets=[_STATUS_CSS], sizing_mode="stretch_width",
            name="simulate-status",
        )
        self.message = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.description = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self._update_filenames()

    def _build_layout(self):
        label = partial(pn.pane.Markdown, margin=(4, 10, -8, 10))
        controls = pn.Column(
            pn.Row(self.play_button, self.step_button, self.reset_button),
            self.speed_slider,
            self.steps_slider,
            pn.Card(
                self.preset_select, pn.Row(self.num_bodies_input, self.seed_input),
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
                label("Projection"), self.projection_select, label("Colour by"), self.color_select,
                title="Display", collapsible=True, sizing_mode="stretch_width",
            ),
            pn.Card(
                pn.Row(self.download_state, self.download_trajectory),
                title="Download", collapsible=True, sizing_mode="stretch_width",
            ),
            width=330,
            scroll=True,
            sizing_mode="stretch_height",
        )
        plots = pn.Column(
            self._energy_pane, self._momentum_pane, pn.pane.Markdown(_READING_GUIDE, sizing_mode="stretch_width"),
            sizing_mode="stretch_width", min_width=320,
        )
        main = pn.Column(
            self.status,
            self.message,
            self.description,
            pn.Row(self._orbit_pane, plots, sizing_mode="stretch_both"),
            sizing_mode="stretch_both",
        )
        return pn.Row(controls, main, sizing_mode="stretch_both")

    def __panel__(self):
        return self._layout

    def _bind(self, widget, name: str) -> None:
        """Two-way link between ``widget.value`` and ``state.<name>``. A value the state
        refuses (a tampered client can send anything) is named in a message and undone."""

        def to_state(event):
            if event.new == getattr(self.state, name):
                return
            try:
                setattr(self.state, name, event.new)
            except (ValueError, TypeError) as error:
                self.notify(f"{widget.label or name}: {error}")
                widget.value = getattr(self.state, name)

        def to_widget(event):
            if widget.value != event.new:
                widget.value = event.new

        widget.param.watch(to_state, "value")
        self.state.param.watch(to_widget, name)

    # ------------------------------------------------------------------ URL
    def _sync_url(self) -> None:
        arguments = {key: values[-1] for key, values in (pn.state.session_args or {}).items() if values}
        rejected = self.state.apply_settings(arguments)
        if rejected:
            self.notify("Ignored invalid link settings (kept defaults): " + "; ".join(rejected))
        pn.state.location.sync(self.state, URL_PARAMETERS, on_error=lambda _: None)
        # The browser reports its own query once loaded: rewrite it to the settings in use,
        # so a tampered value does not stay in a link that gets shared on.
        pn.state.onload(lambda: pn.state.location.update_query(**self.state.url_settings()))

    # ------------------------------------------------------------------ messages
    def notify(self, text: str, *, level: str = "error") -> None:
        """Show ``text`` in the tab's message box and as a toast notification."""
        self.last_message = text
        show_message(self.message, text, level=level, pane_text=_escape_markdown(text))

    def clear_message(self) -> None:
        self.message.visible = False

    # ------------------------------------------------------------------ running
    def _run_in_session(self, fn) -> None:
        """Run ``fn`` under this session's document lock (from a worker thread)."""
        if self._destroyed:
            return
        run_locked(self._doc, fn)

    def _ensure_ready(self) -> None:
        """Compile (in a worker thread when served) and fetch the reference quantities."""
        if self.state.ready:
            return
        generation = self.state.generation
        if not self._served:
            self.compiling = True
            self._update_status(force=True)
            try:
                self.state.prepare()
            except Exception as error:  # noqa: BLE001 - reported in the page, the session lives on
                self.playing = False
                self.notify(f"Could not start this run: {error}")
                return
            finally:
                self.compiling = False
            self._after_ready(generation)
            return
        self.compiling = True
        self._update_status(force=True)

        def work():
            error = None
            try:
                self.state.prepare()
            except Exception as exc:  # noqa: BLE001 - reported in the page, the session lives on
                error = exc
            self._run_in_session(partial(self._after_prepare, generation, error))

        threading.Thread(target=work, name="nbody-compile", daemon=True).start()

    def _after_prepare(self, generation: int, error: Exception | None) -> None:
        self.compiling = False
        if error is not None:
            self.playing = False
            self.notify(f"Could not start this run: {error}")
        elif generation != self.state.generation or not self.state.ready:
            self._ensure_ready()  # the run was rebuilt meanwhile: prepare the new one
            return
        self._after_ready(generation)

    def _after_ready(self, generation: int) -> None:
        self._update_status(force=True)
        if self.playing:
            self._start_loop()

    def _on_playing(self, event) -> None:
        self.play_button.label = "Pause" if event.new else "▶ Play"
        self.play_button.color = "danger" if event.new else "success"
        if event.new:
            self._frame_times.clear()
            if self._served or (self.state.ready and not self.compiling):
                self._start_loop()  # a served loop's worker compiles first if it must
            else:
                self._ensure_ready()
        else:
            self._stop_loop()
        self._update_status(force=True)

    def _start_loop(self) -> None:
        """Served: frames are computed in a worker thread (JAX releases the GIL), so the
        event loop stays free for clicks even when a frame takes longer than the period.
        Notebook / no server: a periodic callback."""
        if self._destroyed:
            return
        if self._served:
            if self._worker is not None and self._worker.is_alive() and not self._stop_event.is_set():
                return
            self._stop_event = threading.Event()
            self._worker = threading.Thread(
                target=self._run_worker, args=(self._stop_event,), name="nbody-frames", daemon=True
            )
            self._worker.start()
        elif self._callback is None:
            period = max(1, int(round(1000 / self.state.frame_rate)))
            self._callback = pn.state.add_periodic_callback(self._frame, period=period, start=True)

    def _stop_loop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()
        self._worker = None
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    def _on_frame_rate(self, event) -> None:
        if self._callback is not None:
            self._callback.period = max(1, int(round(1000 / event.new)))

    def _on_session_destroyed(self, session_context) -> None:
        self._destroyed = True
        running = self._worker is not None or self._callback is not None
        self._stop_loop()
        _LOG.info("session destroyed: Simulate frame loop %s", "stopped" if running else "was idle")

    def _run_worker(self, stop: threading.Event) -> None:
        drawn = threading.Event()
        drawn.set()
        while not stop.is_set():
            start = time.perf_counter()
            try:
                if not self.state.ready:
                    self._run_in_session(partial(self._set_compiling, True))
                    self.state.prepare()
                    self._run_in_session(partial(self._set_compiling, False))
                self.state.step_frame()
                frame = self.state.snapshot()
            except Exception as error:  # noqa: BLE001 - reported in the page
                self._run_in_session(partial(self._frame_failed, error))
                return
            # At most one frame waits in the document queue: a slow browser or a busy
            # event loop slows the animation down instead of piling frames up.
            while not drawn.wait(0.1):
                if stop.is_set():
                    return
            if stop.is_set():
                return
            drawn.clear()
            self._run_in_session(partial(self._draw_frame, frame, drawn))
            remaining = 1.0 / self.state.frame_rate - (time.perf_counter() - start)
            if remaining > 0:
                stop.wait(remaining)

    def _set_compiling(self, value: bool) -> None:
        self.compiling = value
        self._update_status(force=True)

    def _frame_failed(self, error: Exception) -> None:
        self.playing = False
        self.notify(f"Simulation stopped: {error}")

    def _draw_frame(self, frame: dict, drawn: threading.Event) -> None:
        try:
            if self.playing:
                self._push_frame(frame)
        finally:
            drawn.set()

    def _frame(self) -> None:
        """One frame of the periodic-callback loop (notebooks, tests)."""
        if not self.playing or not self.state.ready:
            return
        try:
            self.state.step_frame()
        except Exception as error:  # noqa: BLE001 - stop the loop, keep the session
            self._frame_failed(error)
            return
        self._push_frame(self.state.snapshot())

    def step(self) -> None:
        """Advance one frame (``steps_per_frame`` steps) and draw it."""
        if self.compiling:
            return
        self._ensure_ready()
        try:
            self.state.step_frame()
        except Exception as error:  # noqa: BLE001
            self.notify(f"Step failed: {error}")
            return
        self._push_frame(self.state.snapshot())
        self._update_status(force=True)

    def reset(self) -> None:
        """Back to the initial conditions of the current settings."""
        self.state.reset()
        self._redraw_all()
        self._ensure_ready()

    # ------------------------------------------------------------------ drawing
    def _push_frame(self, frame: dict) -> None:
        """Send one frame (from :meth:`SimulationState.snapshot`) to the plots."""
        now = time.perf_counter()
        self._frame_times.append(now)
        if len(self._frame_times) > 90:
            del self._frame_times[:-90]
        new = frame["history"]
        with pn.io.hold(self._doc) if self._served else _nullcontext():
            columns = frame["bodies"]
            if len(self.body_source.data["x"]) == len(columns["x"]):
                # Only what moves: masses and marker sizes are constant within a run.
                self.body_source.data.update({k: columns[k] for k in ("x", "y", "color", "speed")})
            else:
                self.body_source.data = columns
            if frame["trails"] is not None:
                self.trail_source.data = self._trail_data(frame["trails"])
            if new.time.size:
                self.history_source.stream(
                    {
                        "t": new.time,
                        "energy_error": np.maximum(new.energy_error, ERROR_FLOOR),
                        "momentum_error": np.maximum(new.momentum_error, ERROR_FLOOR),
                        "angular_momentum_error": np.maximum(new.angular_momentum_error, ERROR_FLOOR),
                    },
                    rollover=HISTORY_POINTS,
                )
            self._update_status()
        fault = frame.get("fault")
        if frame["nonfinite"]:
            # The state stopped at its last good step (see SimulationState.step_frame).
            self.playing = False
            text = fault.message if fault is not None else (
                "The run produced NaN or inf (a close encounter?): lower dt, add softening, or Reset.")
            if self.last_message != text or not self.message.visible:
                self.notify(text)
        elif frame.get("energy_warning") and self._warned_generation != self.state.generation:
            self._warned_generation = self.state.generation  # once per run
            self.notify(frame["energy_warning"], level="warning")

    def _trail_data(self, columns: dict | None = None) -> dict:
        columns = dict(self.state.trail_columns() if columns is None else columns)
        color = np.asarray(columns.pop("color"))
        if 0 < color.size <= len(_FEW_COLORS):
            columns["line_color"] = list(_FEW_COLORS[: color.size])  # few bodies: one colour each
        else:
            columns["line_color"] = [_PALETTE[int(c * (len(_PALETTE) - 1))] for c in color]
        return columns

    def _redraw_all(self) -> None:
        state = self.state
        extent = state.extent()
        history = state.history
        self._orbit.x_range.update(start=-extent, end=extent)
        self._orbit.y_range.update(start=-extent, end=extent)
        i, j = state.axes
        self._orbit.xaxis.axis_label, self._orbit.yaxis.axis_label = "xyz"[i], "xyz"[j]
        self.body_source.data = state.body_columns()
        self.trail_source.data = self._trail_data()
        self.history_source.data = {
            "t": history.time,
            "energy_error": np.maximum(history.energy_error, ERROR_FLOOR),
            "momentum_error": np.maximum(history.momentum_error, ERROR_FLOOR),
            "angular_momentum_error": np.maximum(history.angular_momentum_error, ERROR_FLOOR),
        }
        self.state.take_new_history()
        self._set_ladder("dt", state.dt)
        self._set_ladder("softening", state.softening)
        self.num_bodies_input.disabled = not state.scalable
        self.seed_input.disabled = not state.scalable
        if self.num_bodies_input.value != state.num_bodies:
            self.num_bodies_input.value = state.num_bodies
        self.description.object = f"**{state.preset.replace('_', ' ').title()}** — {state.description}"
        self._frame_times.clear()
        self._update_filenames()
        self._update_status(force=True)

    def _on_rebuilt(self, *events) -> None:
        self.clear_message()
        self._redraw_all()
        self._ensure_ready()

    def _on_display_change(self, *events) -> None:
        names = {e.name for e in events}
        if "projection" in names:
            i, j = self.state.axes
            self._orbit.xaxis.axis_label, self._orbit.yaxis.axis_label = "xyz"[i], "xyz"[j]
        self.body_source.data = self.state.body_columns()
        self.trail_source.data = self._trail_data()

    def _sync_ladders(self, event) -> None:
        self._set_ladder(event.name, event.new)

    def _set_ladder(self, name: str, value: float) -> None:
        slider, choices = (self.dt_slider, DT_CHOICES) if name == "dt" else (self.softening_slider, SOFTENING_CHOICES)
        value = float(value)
        if value not in slider.options:
            slider.options = _ladder_options(choices, value)
        if slider.value != value:
            slider.value = value

    def _on_num_bodies_widget(self, event) -> None:
        if event.new is None or event.new == self.state.num_bodies:
            return
        try:
            self.state.num_bodies = int(event.new)
        except ValueError as error:
            self.notify(f"Bodies N: {error}")
            self.num_bodies_input.value = self.state.num_bodies

    # ------------------------------------------------------------------ status
    def rates(self) -> tuple[float, float]:
        """``(frames/s, steps/s)`` over the last frames of the loop (0 when idle)."""
        times = self._frame_times
        if len(times) < 2 or not self.playing:
            return 0.0, 0.0
        fps = (len(times) - 1) / (times[-1] - times[0])
        return fps, fps * self.state.steps_per_frame

    def _update_status(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_status < _STATUS_INTERVAL_S:
            return
        self._last_status = now
        state = self.state
        fps, steps = self.rates()
        if self.compiling:
            mode = '<span class="compiling">compiling…</span>'
        elif state.nonfinite:
            mode = '<span class="warning">non-finite!</span>'
        elif self.playing:
            mode = '<span class="playing">▶ playing</span>'
        else:
            mode = '<span class="paused">paused</span>'
        self.status.object = (
            f"{mode} &nbsp; t = <b>{state.time:.4g}</b> &nbsp;·&nbsp; <b>{steps:,.0f}</b> steps/s"
            f" &nbsp;·&nbsp; <b>{fps:.1f}</b> frames/s &nbsp;·&nbsp; N = {state.current.num_bodies}"
            f" &nbsp;·&nbsp; {state.integrator}, {state.force_method}, {state.precision},"
            f" dt = {state.dt:.3g}, ε = {state.softening:.3g}"
        )

    # ------------------------------------------------------------------ files
    def _on_upload(self, *events) -> None:
        if not self.upload.filename:
            return
        data = self.upload.value if self.upload.value is not None else b""
        filename = self.upload.filename or "upload.csv"
        try:
            self.state.load_csv(data, filename=filename)
        except ValueError as error:
            self.notify(f"Could not load {filename}: {error}. The previous setup is kept.")
            return
        self.clear_message()
        self.notify(f"Loaded {filename}: {self.state.current.num_bodies} bodies.", level="info")
        if self.state.preset == UPLOADED:
            self._redraw_all()
            self._ensure_ready()

    def _update_filenames(self) -> None:
        stem = self.state.preset if self.state.preset != UPLOADED else "uploaded"
        self.download_state.filename = safe_filename(f"nbody_{stem}_state", suffix=".csv")
        self.download_trajectory.filename = safe_filename(f"nbody_{stem}_trajectory", suffix=".npz")

    def _state_csv_file(self) -> io.BytesIO:
        return io.BytesIO(self.state.state_csv().encode())

    def _trajectory_file(self) -> io.BytesIO:
        if not self.state.ready:
            self.state.prepare()
        return io.BytesIO(self.state.trajectory_npz())


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def _escape_markdown(text: str) -> str:
    """User-supplied text (file names, URL values) shown literally: no HTML, no Markdown."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


@lru_cache(maxsize=None)
def _preset_label(name: str) -> str:
    if name == UPLOADED:
        return "Uploaded CSV"
    preset = PRESETS[name]
    size = f"N = {preset.default_num_bodies}+" if preset.scalable else f"{preset.build(None, None).num_bodies} bodies"
    return f"{name.replace('_', ' ').capitalize()} ({size})"


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
