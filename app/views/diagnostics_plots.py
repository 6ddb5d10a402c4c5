"""The Simulate tab's energy and momentum plots: streamed at their own cadence (about five
times a second while playing), apart from the browser-drawn orbit scene's frame rate.

Each frame's diagnostics are queued; :meth:`DiagnosticsPlots.flush` streams the queued points
that are newer than the last one drawn (a full redraw may come between a frame's computation
and its flush), and :meth:`DiagnosticsPlots.replace` draws a whole history at once (a new run).
"""

from __future__ import annotations

import math
import time

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from nbody_explorer.state.simulate import ERROR_FLOOR, HISTORY_POINTS, FrameDiagnostics

__all__ = ["DiagnosticsPlots"]

_LINE_COLORS = {"energy": "#d62728", "momentum": "#1f77b4", "angular": "#2ca02c"}


def _diagnostic_figure(name: str, title: str, y_label: str):
    fig = figure(
        name=name, title=title, y_axis_type="log", min_height=150, sizing_mode="stretch_both",
        tools="pan,wheel_zoom,box_zoom,reset,save", x_axis_label="time", y_axis_label=y_label,
    )
    fig.title.text_font_size = "15px"
    fig.xaxis.axis_label_text_font_size = fig.yaxis.axis_label_text_font_size = "14px"
    fig.xaxis.major_label_text_font_size = fig.yaxis.major_label_text_font_size = "12px"
    return fig


def _columns(history: FrameDiagnostics) -> dict[str, np.ndarray]:
    # Errors floored at ERROR_FLOOR: an exact zero cannot be drawn on a log axis.
    return {
        "t": history.time,
        "energy_error": np.maximum(history.energy_error, ERROR_FLOOR),
        "momentum_error": np.maximum(history.momentum_error, ERROR_FLOOR),
        "angular_momentum_error": np.maximum(history.angular_momentum_error, ERROR_FLOOR),
    }


class DiagnosticsPlots:
    """Relative energy error and momentum / angular-momentum errors against time (one
    Bokeh source named ``simulate-history``, two log-scale figures). Not thread-safe: call it
    in the session (under the document lock when served)."""

    def __init__(self):
        self.source = ColumnDataSource(
            {"t": [], "energy_error": [], "momentum_error": [], "angular_momentum_error": []},
            name="simulate-history",
        )
        energy = _diagnostic_figure("simulate-energy", "Relative energy error |E − E₀| / |E₀|", "|ΔE / E₀|")
        energy.line("t", "energy_error", source=self.source, line_width=2, color=_LINE_COLORS["energy"])
        momentum = _diagnostic_figure("simulate-momentum", "Momentum and angular-momentum error", "relative error")
        momentum.line("t", "momentum_error", source=self.source, line_width=2,
                      color=_LINE_COLORS["momentum"], legend_label="|ΔP| / Σ m|v₀|")
        momentum.line("t", "angular_momentum_error", source=self.source, line_width=2,
                      color=_LINE_COLORS["angular"], legend_label="|ΔL| / Σ m|r₀×v₀|")
        momentum.legend.location = "bottom_right"
        momentum.legend.background_fill_alpha = 0.7
        momentum.legend.label_text_font_size = "12px"
        momentum.legend.padding = momentum.legend.spacing = 2
        self.figures = (energy, momentum)
        self.panes = tuple(pn.pane.Bokeh(fig, sizing_mode="stretch_both", min_height=150) for fig in self.figures)
        self._pending: list[FrameDiagnostics] = []  # frames sent, not yet in the plots
        self._drawn_until = -math.inf  # time of the newest point drawn
        self.last_flush = 0.0  # time.perf_counter() of the last flush

    def queue(self, history: FrameDiagnostics) -> None:
        """Keep one frame's diagnostics for the next :meth:`flush`."""
        self._pending.append(history)

    def flush(self) -> None:
        """Stream the queued points newer than the last one drawn into the plots."""
        self.last_flush = time.perf_counter()
        pending, self._pending = self._pending, []
        pending = [new for new in pending if new.time.size]
        if not pending:
            return
        new = type(pending[0])(*(np.concatenate(columns) for columns in zip(*pending)))
        fresh = new.time > self._drawn_until
        if not fresh.any():
            return
        new = type(new)(*(column[fresh] for column in new))
        self._drawn_until = float(new.time[-1])
        self.source.stream(_columns(new), rollover=HISTORY_POINTS)

    def set_time_unit(self, unit: str) -> None:
        """Label both time axes ``time (<unit>)``: yr for the solar system, time units otherwise."""
        label = f"time ({unit})"
        for fig in self.figures:
            if fig.xaxis[0].axis_label != label:
                fig.xaxis.axis_label = label

    def replace(self, history: FrameDiagnostics) -> None:
        """Draw ``history`` (a whole run's diagnostics) in place of what is shown; drop the queue."""
        self._pending = []
        self.source.data = _columns(history)
        self._drawn_until = float(history.time[-1]) if history.time.size else -math.inf
