"""Chaos tab: twin runs, their orbits in one plot, separation on a log axis, the Lyapunov time.

Thin view over :class:`nbody_explorer.state.chaos.ChaosState`; the run goes to the session runner's
worker pool (app/runtime/), never the event loop.
"""

from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from nbody_explorer.runtime.messages import escape_markdown
from nbody_explorer.runtime.view import SessionView
from nbody_explorer.state.chaos import SYSTEMS, ChaosState

__all__ = ["ChaosView", "TWIN_COLORS"]

#: Okabe-Ito blue and vermillion: the original and the perturbed copy (colour-blind safe).
TWIN_COLORS = ("#0072B2", "#D55E00")


class ChaosView(SessionView):
    """Twin runs made visible: one system and its perturbed copy side by side."""

    def __init__(self, state: ChaosState | None = None, **params):
        super().__init__(label="Chaos", **params)
        self.state = state or ChaosState()
        self.system = pn.widgets.Select(
            label="System", options={label: key for key, (label, *_) in SYSTEMS.items()}, value=self.state.system
        )
        self.delta = pn.widgets.Select(
            label="Perturbation δ of body 1's x (length units)",
            options={f"{d:g}": d for d in self.state.param.delta.objects}, value=self.state.delta,
        )
        self.run_button = pn.widgets.Button(label="Run twins", color="primary")
        self.busy = pn.indicators.Progress(active=False, value=-1, visible=False, width=200)
        self.summary = pn.pane.Markdown(escape_markdown(self.state.summary()), name="chaos-summary")
        self.message = pn.pane.Alert("", alert_type="danger", visible=False)
        self.orbit_sources = [ColumnDataSource({"xs": [], "ys": []}, name=f"chaos-orbit-{i}") for i in range(2)]
        self.separation_source = ColumnDataSource({"t": [], "d": []}, name="chaos-separation")
        self.fit_source = ColumnDataSource({"t": [], "d": []}, name="chaos-fit")
        self.power_source = ColumnDataSource({"t": [], "d": []}, name="chaos-power-fit")
        orbits = figure(title="Both copies (x, y in length units)", match_aspect=True, height=380,
                        sizing_mode="stretch_width", x_axis_label="x", y_axis_label="y")
        for index, (source, dash) in enumerate(zip(self.orbit_sources, ("solid", "dashed"))):
            orbits.multi_line("xs", "ys", source=source, color=TWIN_COLORS[index], line_dash=dash,
                              legend_label=("original", "copy + δ")[index], line_width=2 - index * 0.5)
        orbits.legend.location = "top_left"
        separation = figure(title="Separation of the copies (phase space)", y_axis_type="log", height=380,
                            sizing_mode="stretch_width", x_axis_label="t (time units)",
                            y_axis_label="separation |Δx, Δv|")
        separation.line("t", "d", source=self.separation_source, color="#000000", legend_label="separation")
        separation.line("t", "d", source=self.fit_source, color="#CC79A7", line_width=3, line_dash="dashed",
                        legend_label="exponential fit")
        separation.line("t", "d", source=self.power_source, color="#009E73", line_width=3, line_dash="dotted",
                        legend_label="power-law fit (regular)")
        separation.legend.location = "top_left"
        self.system.param.watch(lambda e: setattr(self.state, "system", e.new), "value")
        self.delta.param.watch(lambda e: setattr(self.state, "delta", e.new), "value")
        self.run_button.on_click(self.runner.locked(lambda _: self.run()))
        self._layout = pn.Row(
            pn.Column(self.system, self.delta, self.run_button, self.busy, width=320),
            pn.Column(self.message, self.summary, pn.Row(pn.pane.Bokeh(orbits), pn.pane.Bokeh(separation),
                                                          sizing_mode="stretch_width"),
                      sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    def __panel__(self):
        return self._layout

    def run(self) -> None:
        """Run the twins on the pool (at once when not served) and draw them."""
        if self.job_running("twins"):
            return
        self.run_button.disabled = True
        self.busy.visible = True
        self.message.visible = False
        self.state.error = ""

        def done(result):
            self._finish()
            if result is None:
                self.notify(self.state.error)
                return
            self.state.result = result
            self._draw()

        def failed(error):
            self._finish()
            self.notify(f"The twin run failed: {error}")

        self.run_job("twins", lambda job: self.state.compute(job.checkpoint), done=done, failed=failed)

    def _finish(self) -> None:
        self.run_button.disabled = False
        self.busy.visible = False

    def _draw(self) -> None:
        run = self.state.result
        for index, source in enumerate(self.orbit_sources):
            position = run.position[index]  # [S, n, 3]
            source.data = {"xs": [position[:, b, 0] for b in range(position.shape[1])],
                           "ys": [position[:, b, 1] for b in range(position.shape[1])]}
        positive = run.separation > 0
        self.separation_source.data = {"t": run.time[positive], "d": run.separation[positive]}
        fit = run.fit
        window = (run.time >= fit.t_start) & (run.time <= fit.t_stop)
        empty = {"t": [], "d": []}
        if fit.regular:
            # The power law d ~ (t - t0)^p through the separation's running maximum (the
            # envelope the regular/exponential test compares, nbody_core.lab.chaos).
            window &= run.time > run.time[0]
            t = run.time[window]
            log_t = np.log(t - run.time[0])
            log_d = np.log(np.maximum.accumulate(run.separation)[window])
            intercept = np.mean(log_d - fit.power * log_t)  # least-squares intercept
            self.fit_source.data = empty
            self.power_source.data = {"t": t, "d": np.exp(intercept + fit.power * log_t)}
        else:
            t = np.array([fit.t_start, fit.t_stop])
            log_d = np.log(run.separation[window])
            intercept = np.mean(log_d - fit.exponent * run.time[window])  # least-squares intercept
            self.fit_source.data = {"t": t, "d": np.exp(intercept + fit.exponent * t)}
            self.power_source.data = empty
        self.summary.object = escape_markdown(self.state.summary())
