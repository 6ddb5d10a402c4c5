"""Simulate tab: the live orbit view, its frame loop and the streaming conservation plots.

What belongs here: the run's life in the page (prepare on the worker pool, Play / Step /
Reset, the frame loop and its back-pressure), drawing each frame, when the status line is
redrawn, and the tab's messages. The sidebar's widgets and their links to the state are
:class:`~nbody_explorer.views.simulate_controls.SimulateControls`, the status line :mod:`nbody_explorer.views.simulate_status`;
the run itself is :class:`~nbody_explorer.state.simulate.SimulationState` with its :class:`~nbody_explorer.state.simulate_run.LiveRun`.

The orbit view is :class:`~nbody_explorer.components.orbit_scene.OrbitScene` (``simulate-scene``): per
frame the server sends one binary message of float32 positions and the browser draws the
bodies and keeps the fading trails (3D camera or projections). The browser acknowledges each
painted frame (``drawn``) and at most two frames are in flight; a hidden page or tab
(``page_visible`` false, from the browser's ``visibilitychange`` and the scene's visibility)
gets no frames until it is shown again. The energy and momentum plots stay Bokeh and take the
new points at their own cadence (~5/s), not per frame. Frames are computed on the process's
worker pool (:class:`~nbody_explorer.runtime.session.SessionRunner`). Bokeh models the browser tests read
are named ``simulate-*``.
"""

from __future__ import annotations

import logging
import time
from functools import partial

import panel as pn
import param

from nbody_explorer.compat.alert import AnnouncedAlert
from nbody_explorer.components.orbit_scene import OrbitScene
from nbody_explorer.runtime.document import in_session_callback
from nbody_explorer.runtime.messages import escape_markdown
from nbody_explorer.runtime.periodic import Periodic
from nbody_explorer.runtime.view import SessionView
from nbody_explorer.state.links import FOLLOW_KEYS, RECORD_KEYS, apply_link, url_values
from nbody_explorer.state.simulate import STATIC_SETTINGS, UPLOADED, URL_PARAMETERS, SimulationState
from nbody_explorer.views.body_editor import BodyEditor
from nbody_explorer.views.diagnostics_plots import DiagnosticsPlots
from nbody_explorer.views.keyboard import SimulateKeys
from nbody_explorer.views.predict import PredictPanel
from nbody_explorer.views.record import RecordPanel
from nbody_explorer.views.simulate_controls import WIDGET_NAMES, SimulateControls, preset_distance_scale, unit_words
from nbody_explorer.views.simulate_layout import build_simulate_layout
from nbody_explorer.views.simulate_status import new_status_line, status_text

__all__ = ["SimulateView"]

_LOG = logging.getLogger(__name__)

_STATUS_INTERVAL_S = 0.25  # status line refresh period while playing
# A frame the browser has not acknowledged within this time (hidden tab: no animation
# frames; lost message) no longer holds the next one back: a hidden tab gets ~1 frame/s.
_ACK_TIMEOUT_S = 1.0
_HISTORY_INTERVAL_S = 0.2  # energy/momentum plots take new points ~5 times a second, not per frame
_HIDDEN_POLL_S = 0.5  # page or tab hidden: look again this often (no frame is computed meanwhile)
_DISCONNECTED_POLL_S = 0.5  # socket closed, session not yet destroyed: look again this often


def _frame_period_ms(frame_rate: float) -> int:
    """Milliseconds between two frames of the notebook loop at ``frame_rate`` frames/s."""
    return max(1, int(round(1000 / frame_rate)))


class SimulateView(SessionView):
    """Live simulation of one :class:`~nbody_explorer.state.simulate.SimulationState` per session.

    Args:
        state: the run to display (a new one by default).
        sync_url: mirror the settings in the page URL (served sessions only).
    """

    state = param.ClassSelector(class_=SimulationState, doc="The run shown by this view.")
    playing = param.Boolean(False, doc="Whether the animation loop is running.")
    compiling = param.Boolean(False, doc="True while JAX compiles the frame function.")

    def __init__(self, state: SimulationState | None = None, *, sync_url: bool = True, **params):
        super().__init__(label="Simulate", state=state or SimulationState(), **params)
        # The frame loop when not served (notebook, tests); served, each frame is a "frame" job.
        self._ticker = Periodic(self._frame, period_ms=_frame_period_ms(self.state.frame_rate), runner=self.runner)
        self._loop_epoch = 0  # bumped by every start/stop: a frame of an older loop is dropped
        self._step_requested = False  # Step clicked while the run compiles: done once ready
        self._next_frame_at = 0.0
        self._frame_times: list[float] = []
        self._last_status = 0.0
        self.last_message = ""  # unescaped text of the latest message (for tests and logs)
        self._warned_generation = -1  # run generation whose energy warning was shown
        self._drawn_generation = -1  # run generation the scene shows (its bodies and masses)
        self._build_plots()
        self.recorder = RecordPanel(self)  # the Record button (app/views/record.py)
        self.editor = BodyEditor(self)  # drag bodies and arrows while paused (app/views/body_editor.py)
        self.controls = SimulateControls(
            self.state, scene=self.scene, recorder=self.recorder, notify=self.notify, served=self.served,
            editor=self.editor)
        for name in WIDGET_NAMES:  # the sidebar's widgets, also reachable as view.<name>
            setattr(self, name, getattr(self.controls, name))
        self._wire_controls()
        self.status = new_status_line()  # app/views/simulate_status.py
        self.message = AnnouncedAlert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.description = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self.predictor = PredictPanel(self)  # predict, then reveal (app/views/predict.py)
        self.keys = SimulateKeys(self)  # keyboard shortcuts + help overlay (app/views/keyboard.py)
        self._layout = build_simulate_layout(self)  # app/views/simulate_layout.py
        if sync_url and self.served:
            self._sync_url()
            # A link's display settings (view=xz, ...) came before the watcher below: the scene has the defaults.
            self.scene.param.update(view=self.state.projection, color_by=self.state.color_by,
                                    size_by_mass=self.state.size_by_mass, trails=self.state.trails,
                                    trail_length=self.state.trail_length)
        # Redraws run as locked next-tick callbacks, like the frames: written from a widget callback
        # they could overtake a frame still queued for sending (a frame of the previous run drawn after).
        self.state.param.watch(self.runner.locked(self._on_rebuilt), list(STATIC_SETTINGS))
        self.state.param.watch(
            self.runner.locked(self._on_display_change), ["projection", "color_by", "size_by_mass", "trails", "trail_length"]
        )
        self.state.param.watch(self._on_frame_rate, ["frame_rate"])
        self.state.param.watch(lambda *_: self.update_status(force=True), ["dt", "softening", "steps_per_frame"])
        self.param.watch(self._on_playing, ["playing"])
        self.runner.param.watch(lambda *_: self.update_status(force=True), ["queue_position"])
        self.runner.on_destroyed(self._stop_loop)
        self._redraw_all()
        self.ensure_ready()
        self._page_built = True  # from here the status line is written in session callbacks

    # ------------------------------------------------------------------ plots
    def _build_plots(self) -> None:
        state = self.state
        self.plots = DiagnosticsPlots()
        self.history_source = self.plots.source  # name "simulate-history" (tests read it)
        self.scene = OrbitScene(
            name="simulate-scene", view=state.projection, color_by=state.color_by, size_by_mass=state.size_by_mass,
            trails=state.trails, trail_length=state.trail_length, sizing_mode="stretch_both", min_height=300,
            distance_scale=preset_distance_scale(state.preset),
        )
        # Back-pressure: the browser sets `drawn` to the frame it painted last, and a frame is
        # sent only while fewer than two are unacknowledged (SessionRunner.frame_slot_free);
        # a hidden page pauses.
        self.scene.param.watch(self._on_drawn, ["drawn"])  # touches no Bokeh model: no lock needed
        self.scene.param.watch(self.runner.locked(self._on_visibility), ["page_visible"])

    # ------------------------------------------------------------------ layout
    def _wire_controls(self) -> None:
        """Connect the sidebar's buttons and upload to what they start here."""
        self.play_button.link(self, value="playing", bidirectional=True)
        self.step_button.on_click(self.runner.locked(lambda _: self.step()))
        self.reset_button.on_click(self.runner.locked(lambda _: self.reset()))
        # An empty file arrives as value None with a file name: watch both.
        self.upload.param.watch(self.runner.locked(self._on_upload), ["value", "filename"])

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ URL
    def _sync_url(self) -> None:
        arguments = {key: values[-1] for key, values in (pn.state.session_args or {}).items() if values}
        rejected = self.state.apply_settings(arguments)
        self.scene.distance_scale = preset_distance_scale(self.state.preset)  # a link's `distances=` wins
        # The tab's other settings (follow the centre of mass, the Record panel's): URL keys too.
        extras = ((self.scene, FOLLOW_KEYS), (self.recorder.settings, RECORD_KEYS))
        for settings, keys in extras:
            rejected += apply_link(settings, keys, arguments)
            settings.param.watch(lambda *_, s=settings, k=keys: pn.state.location.update_query(**url_values(s, k)),
                                 list(keys))
        if rejected:
            self.notify("Ignored invalid link settings (kept defaults): " + "; ".join(rejected))
        pn.state.location.sync(self.state, URL_PARAMETERS, on_error=lambda _: None)
        # The browser reports its own query once loaded: rewrite it to the settings in use,
        # so a tampered value does not stay in a link that gets shared on.
        pn.state.onload(lambda: pn.state.location.update_query(
            **self.state.url_settings(), **{k: v for s, keys in extras for k, v in url_values(s, keys).items()}))

    # ------------------------------------------------------------------ messages
    def notify(self, text: str, *, level: str = "error") -> None:
        """Show ``text`` in the tab's message box (and keep it in :attr:`last_message`)."""
        self.last_message = text
        super().notify(text, level=level)

    def clear_message(self) -> None:
        self.message.visible = False

    # ------------------------------------------------------------------ running
    def ensure_ready(self) -> None:
        """Build, compile (on the pool when served) and fetch the reference quantities."""
        if self.state.ready:
            if self._drawn_generation != self.state.generation:
                self._redraw_all()  # prepared by another job (a frame, or a prepare that raced a reset)
            return
        if not self.served:
            self.compiling = True
            self.update_status(force=True)
            try:
                self.state.prepare()
            except Exception as error:  # noqa: BLE001 - reported in the page, the session lives on
                self.playing = False
                self.notify(f"Could not start this run: {error}")
                return
            finally:
                self.compiling = False
            self._after_ready()
            return
        if self.job("prepare") is not None:
            return  # already preparing: its end starts the loop when playing (_after_ready)
        if self.playing:
            # The frame loop prepares before its first frame; make sure it runs. A prepare that
            # answered for a run replaced meanwhile, or was interrupted, lands here while
            # playing with no frame job: returning left the page at t = 0, "playing", for good.
            self._start_loop()
            return
        if not self.runner.connected:
            # The page's connection is gone (closed, or a websocket that reconnects): ask
            # again shortly; a destroyed session asks no more.
            self.runner.later(_DISCONNECTED_POLL_S, self.ensure_ready)
            return
        self.compiling = True
        self.update_status(force=True)

        def prepared(_result):
            self.compiling = False
            if self.state.ready:
                # prepare() readies whichever run is current when it starts: maybe one reset
                # after this job was submitted (then it is drawn here, not left undrawn).
                self._after_ready()
            else:
                self.ensure_ready()  # rebuilt meanwhile: prepare the new one

        def failed(error):
            self.compiling = False
            self.playing = False
            self.notify(f"Could not start this run: {error}")

        def interrupted():
            # Dropped while the page's connection was gone: not compiling any more, and
            # prepared again once it is back (or by Play / Step, which prepare first).
            self.compiling = False
            self.update_status(force=True)
            self.ensure_ready()

        self.run_job("prepare", lambda job: self.state.prepare(), done=prepared, failed=failed, interrupted=interrupted)

    def _after_ready(self) -> None:
        if self._drawn_generation != self.state.generation:
            self._redraw_all()  # built on the pool: draw its bodies now
        self.update_status(force=True)
        if self.playing:
            self._step_requested = False  # playing: the loop moves on anyway
            self._start_loop()
        elif self._step_requested:
            self._step_requested = False
            self.step()

    def _refused(self) -> bool:
        """Refuse (and say why, in words) a frame of these settings over the CPU budget."""
        try:
            self.state.check_frame_cost()
        except ValueError as error:
            self.notify(f"{error}.")
            return True
        return False

    def _on_playing(self, event) -> None:
        if event.new and self._refused():
            self.playing = False
            return
        self.controls.show_playing(event.new)
        if event.new:
            self._frame_times.clear()
            if self.served or (self.state.ready and not self.compiling):
                self._start_loop()  # a served loop compiles first if it must
            else:
                self.ensure_ready()
        else:
            self._stop_loop()
            self.runner.in_session(self.plots.flush)  # the last frames' points, at once
        self.update_status(force=True)

    def _start_loop(self) -> None:
        """Served: each frame is one job on the process's worker pool (JAX never runs on
        the event loop); the next one is asked for once the browser has drawn this one.
        Notebook / no server: a periodic callback."""
        if self.runner.destroyed:
            return
        if self.served:
            if self.job("frame") is None:
                self._loop_epoch += 1
                self._request_frame(self._loop_epoch)
        else:
            self._ticker.start()  # nothing if already started

    def _stop_loop(self) -> None:
        """Stop at once: the frame being computed is cancelled between two compiled calls
        and any frame of the stopped loop that still arrives is dropped (new epoch)."""
        self._loop_epoch += 1
        self.cancel_job("frame")
        self._ticker.stop()

    def _request_frame(self, epoch: int) -> None:
        """Session thread: ask the pool for the next frame of loop ``epoch`` when it is due,
        no frame is being computed and none waits for the browser."""
        if epoch != self._loop_epoch or not self.playing or self.job("frame") is not None or self.runner.destroyed:
            return
        if self.job("prepare") is not None:
            return  # one job of this session at a time: the prepare's end starts the loop (_after_ready)
        if not self.runner.connected:
            self.runner.later(_DISCONNECTED_POLL_S, partial(self._request_frame, epoch))  # tab gone: send nothing
            return
        if not self.scene.page_visible:
            return  # hidden page or tab: _on_visibility asks again once it is shown
        if not self.runner.frame_slot_free(timeout_s=_ACK_TIMEOUT_S):
            self.runner.later(_ACK_TIMEOUT_S, partial(self._request_frame, epoch))  # the ack usually comes first
            return
        wait = self._next_frame_at - time.perf_counter()
        if wait > 0.002:
            self.runner.later(wait, partial(self._request_frame, epoch))
            return
        self._next_frame_at = time.perf_counter() + 1.0 / self.state.frame_rate
        # The frame reports its place in the queue: the status line then says the session
        # waits (issue 26). Each piece ends at a checkpoint (job.take_turn) where another
        # session may go first and a stop acts.
        self.run_job(
            "frame", self._compute_frame, done=partial(self._frame_done, epoch),
            failed=partial(self._frame_error, epoch, self.state.generation),
            interrupted=partial(self._frame_done, epoch, None),
        )

    def _compute_frame(self, job, generation: int | None = None) -> dict | None:
        """Pool thread: one frame of the current run (None if stopped or rebuilt meanwhile);
        with ``generation`` (a Step), of that run only: None once Reset or a new setting has
        started another, even before this job got a slot."""
        state = self.state
        # Polled before the frame and after each of its pieces: job.take_turn is the job's
        # checkpoint (the scheduler charges the piece and may give the slot to another
        # session first) and says whether the job was stopped.
        cancelled = job.take_turn
        if generation is not None:
            def cancelled() -> bool:  # polled by step_frame after it has read the run's generation
                return job.take_turn() or state.generation != generation
            if job.cancelled() or state.generation != generation:
                return None
        if not state.ready:
            self.runner.in_session(partial(self._set_compiling, True))
            try:
                state.prepare()
            finally:
                self.runner.in_session(partial(self._set_compiling, False))
        if state.step_frame(cancelled=cancelled) is None:
            return None
        return state.live_frame()

    def _frame_done(self, epoch: int, frame: dict | None) -> None:
        if epoch != self._loop_epoch:
            return  # a frame of a stopped loop: never drawn
        if frame is not None:
            self._push_frame(frame)
        self._request_frame(epoch)

    def _frame_error(self, epoch: int, generation: int, error: BaseException) -> None:
        if epoch != self._loop_epoch:
            return
        if generation != self.state.generation:
            # A frame of a replaced run (it may read a new N with the old integrator): ask again.
            _LOG.info("%s: a frame of a replaced run failed (%s); dropped", self.runner.label, error)
            self._request_frame(epoch)
            return
        self._frame_failed(error)

    def _on_drawn(self, event) -> None:
        """The browser painted frame ``event.new``: the frames up to it are no longer in flight."""
        outstanding = self.scene.unacknowledged(event.new)
        if outstanding is not None:
            self.runner.frame_acknowledged(outstanding)
            self._request_frame(self._loop_epoch)

    def _on_visibility(self, event) -> None:
        """Page or tab shown again (``visibilitychange`` in the browser): resume the frames."""
        self.runner.frame_acknowledged()  # a frame sent while hiding may never be painted
        if event.new:
            self._request_frame(self._loop_epoch)
        self.update_status(force=True)

    def _on_frame_rate(self, event) -> None:
        self._ticker.period_ms = _frame_period_ms(event.new)

    def close(self) -> None:
        """Stop the frame loop and the session's work for good, as the session's destruction
        does (served, the runner's destroy hook stops the loop); for tests and notebooks."""
        running = self.job("frame") is not None or self._ticker.running
        self.runner.close()
        self._stop_loop()
        if running:
            _LOG.info("session destroyed: Simulate frame loop stopped")

    def _set_compiling(self, value: bool) -> None:
        self.compiling = value
        self.update_status(force=True)

    def _frame_failed(self, error: BaseException) -> None:
        # A refusal (ValueError) is said in words; anything else logs its traceback.
        _LOG.warning("%s: frame failed, run stopped: %s", self.runner.label, error,
                     exc_info=None if isinstance(error, ValueError) else error)
        self.playing = False
        self.notify(f"Simulation stopped: {error}")

    def _frame(self) -> None:
        """One frame of the periodic-callback loop (notebooks, tests)."""
        if not self.playing or not self.state.ready:
            return
        try:
            diagnostics = self.state.step_frame()
        except Exception as error:  # noqa: BLE001 - stop the loop, keep the session
            self._frame_failed(error)
            return
        if diagnostics is not None:
            self._push_frame(self.state.live_frame())

    def step(self) -> None:
        """Advance one frame (``steps_per_frame`` steps) and draw it (on the pool when served)."""
        if self.job("step") is not None:
            return  # one step at a time; this click lands while the previous frame computes
        if self._refused():
            return
        if self.compiling:
            # The run is compiling (just loaded, reset or rebuilt): a click then must not be
            # lost; the step is taken as soon as the run is ready (_after_ready).
            self._step_requested = True
            self.update_status(force=True)
            return
        if not self.served:
            self.ensure_ready()
            try:
                diagnostics = self.state.step_frame()
            except Exception as error:  # noqa: BLE001
                self.notify(f"Step failed: {error}")
                return
            if diagnostics is not None:
                self._push_frame(self.state.live_frame())
            self.update_status(force=True)
            return

        def stepped(frame):
            if frame is not None:
                self._push_frame(frame)
            self.update_status(force=True)

        generation = self.state.generation
        def failed(error):
            if self.state.generation != generation:
                return  # the run was replaced while it stepped (see _frame_error): nothing to report
            self.notify(f"Step failed: {error}")

        def interrupted():
            self.update_status(force=True)  # the page's connection was gone: the next click steps

        # The step belongs to the run shown when it was clicked: if Reset (or a new setting)
        # starts another while the job waits for a slot, the job steps nothing (it used to
        # prepare and step the new run: t = one frame on screen right after Reset).
        self.run_job("step", partial(self._compute_frame, generation=generation), done=stepped,
                     failed=failed, interrupted=interrupted)

    def reset(self) -> None:
        """Back to the initial conditions of the current settings (a Step not yet taken is
        dropped: it was asked of the run this ends)."""
        self.clear_message()  # a warning about the previous run no longer applies
        self.cancel_job("step")
        self._step_requested = False
        self.state.reset()
        self._redraw_all()
        self.ensure_ready()

    # ------------------------------------------------------------------ drawing
    def _push_frame(self, frame: dict | None) -> None:
        """Send one frame (from :meth:`SimulationState.live_frame`) to the scene; its
        diagnostics join the plots at their own cadence. A frame of an older run (reset or
        rebuilt since it was computed) is dropped: it is never drawn and its warnings are
        never shown. The first frame of a run the scene does not show yet (built on the pool
        after a reset) draws the whole run instead."""
        if frame is None or frame.get("generation", self.state.generation) != self.state.generation:
            return
        now = time.perf_counter()
        self._frame_times.append(now)
        if len(self._frame_times) > 90:
            del self._frame_times[:-90]
        if self._drawn_generation != frame.get("generation", self.state.generation):
            self._redraw_all()
        else:
            self.plots.queue(frame["history"])
            with self.batch():
                self.scene.show_frame(frame["position"], velocity=frame["velocity"], time=frame["time"])
                if not self.playing or now - self.plots.last_flush >= _HISTORY_INTERVAL_S:
                    self.plots.flush()
                self.update_status()
        if self.served:
            self.runner.frame_sent()
        fault = frame.get("fault")
        if frame["nonfinite"]:
            # The state stopped at its last good step (see SimulationState.step_frame).
            self.playing = False
            text = fault.message if fault is not None else (
                "The run produced NaN or inf (a close encounter?): lower dt, add softening, or Reset.")
            if self.last_message != text or not self.message.visible:
                self.notify(text)
        elif frame.get("energy_warning") and self._warned_generation != frame.get("generation"):
            self._warned_generation = frame.get("generation")  # once per run
            self.notify(frame["energy_warning"], level="warning")

    def shown(self, generation: int) -> None:
        """The scene now shows run ``generation`` (drawn by a sub-view, e.g. the body editor):
        it is not redrawn once that run is ready."""
        self._drawn_generation = generation

    def batch(self):
        """Send the model changes made inside as one message, in order with every other
        change of this session (:meth:`SessionRunner.batch <nbody_explorer.runtime.session.SessionRunner.batch>`)."""
        return self.runner.batch()

    def _redraw_all(self) -> None:
        with self.batch():
            self._redraw_all_unbatched()

    def _redraw_all_unbatched(self) -> None:
        """The whole run: its bodies (once built: until then the scene keeps the previous
        picture and the status says "preparing…"), every plot point, labels, status."""
        state = self.state
        history = state.history
        run = state.run_snapshot()  # never builds: no JAX on the event loop
        if run is not None:
            self.scene.show_run(run["position"], run["mass"], velocity=run["velocity"], time=run["time"])
            self._drawn_generation = run["generation"]
        self.plots.replace(history)
        time_unit, self.scene.length_unit = unit_words(state)
        self.plots.set_time_unit(time_unit)
        self.state.take_new_history()
        self.controls.refresh()
        # The description quotes an uploaded file's name: shown as text, never as HTML/Markdown.
        self.description.object = f"**{state.preset.replace('_', ' ').title()}** — {escape_markdown(state.description)}"
        self._frame_times.clear()
        self.editor.refresh()  # a new run: the edit history and selection belong to the old one
        self.update_status(force=True)

    def _on_rebuilt(self, *events) -> None:
        if any(event.name == "preset" for event in events):  # in a session callback: never mid-change
            self.scene.distance_scale = preset_distance_scale(self.state.preset)
        self.clear_message()
        self._redraw_all()
        self.ensure_ready()

    def _on_display_change(self, *events) -> None:
        # Drawing happens in the browser: display settings are the scene's parameters.
        names = {"projection": "view", "color_by": "color_by", "size_by_mass": "size_by_mass",
                 "trails": "trails", "trail_length": "trail_length"}
        self.scene.param.update(**{names[e.name]: e.new for e in events})

    # ------------------------------------------------------------------ status
    def rates(self) -> tuple[float, float]:
        """``(frames/s, steps/s)`` over the last frames of the loop (0 when idle)."""
        times = self._frame_times
        if len(times) < 2 or not self.playing:
            return 0.0, 0.0
        fps = (len(times) - 1) / (times[-1] - times[0])
        return fps, fps * self.state.steps_per_frame

    def update_status(self, force: bool = False) -> None:
        """Redraw the status line (mode, t, rates, N, integrator); at most every
        ``_STATUS_INTERVAL_S`` seconds unless ``force``. Public for the editor and Predict panels."""
        if self.served and getattr(self, "_page_built", False) and not in_session_callback():
            # On Panel's deferred queue (a widget callback) it could overtake a newer status and
            # stay ("N = 3" after "N = 2"): written a tick later in a session callback, as of then.
            self.runner.in_session(partial(self.update_status, force))
            return
        now = time.perf_counter()
        if not force and now - self._last_status < _STATUS_INTERVAL_S:
            return
        self._last_status = now
        fps, steps = self.rates()
        self.status.object = status_text(
            self.state, queue_position=self.runner.queue_position, playing=self.playing,
            preparing=self.compiling or self._drawn_generation != self.state.generation,
            hidden=self.served and not self.scene.page_visible, fps=fps, steps_per_second=steps,
            # Frames the browser painted in its last second (reported by the scene); not served: sent.
            painted=(self.scene.paint_rate if self.served else fps) if self.playing else 0.0,
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
        # After the rebuild's own callback (queued by load_csv's preset change), which clears
        # the box: said first, this message was hidden at once (no toast shows it since issue 28).
        loaded = f"Loaded {filename}: {self.state.body_count} bodies."
        self.in_session(lambda: self.notify(loaded, level="info"))
        if self.state.preset == UPLOADED:
            self._redraw_all()
            self.ensure_ready()
