"""A short path for the reports a custom component's browser writes every frame.

:class:`BrowserReports` is a mixin for a Panel ``JSComponent`` whose browser writes small
reports back many times a second (the orbit scene: an acknowledgement per painted frame, paint
counts). On the tested Panel and param versions it takes the five private names of
:data:`PRIVATE_USES`; elsewhere the component runs on Panel's general path, correct but slower.

Measured (in-process, the served dashboard's document of 226 models, median of 2000): one
acknowledgement costs the server 0.28 ms on this path and 1.39 ms on Panel's (0.70 ms with only
the ``_process_events`` half), against 3.0 ms of server CPU per frame per session in
``benchmarks/results/live_view.md``; without ``_priority_changes`` Panel holds every report back
50 ms, which capped a session at ~10 frames/s.
"""

from __future__ import annotations

from typing import ClassVar

from panel.io.state import state as panel_state

from nbody_explorer.compat import PrivateUse, version_tested

__all__ = ["BrowserReports", "PRIVATE_USES", "SHORT_PATH"]

PRIVATE_USES = (
    PrivateUse(
        "param", "param.parameterized._syncing",
        "sets the reported parameters without echoing them back to the browser (what Panel's own "
        "_process_events does): part of the 0.28 ms vs 1.39 ms per acknowledgement",
        "Panel's Reactive._process_events for every event",
    ),
    PrivateUse(
        "panel", "Reactive._process_events (overridden), Reactive._in_process__events",
        "reports set directly, without Panel's edit_readonly relock of every parameter (O(parameters)): "
        "0.70 ms -> 0.28 ms per acknowledgement",
        "Panel's Reactive._process_events for every event",
    ),
    PrivateUse(
        "panel", "Reactive._update_properties (overridden)",
        "a browser-written report sends nothing back, so the design's stylesheets are not recomputed "
        "for it: 1.39 ms -> 0.70 ms per acknowledgement",
        "Panel's Reactive._update_properties for every change",
    ),
    PrivateUse(
        "panel", "Reactive._busy__ignore (class attribute)",
        "a report does not mark the session busy (Panel toggled its busy state for every frame)",
        "Panel's default: every report marks the session busy for its duration",
    ),
    PrivateUse(
        "panel", "Reactive._priority_changes (class attribute)",
        "urgent reports are processed on the next tick, not after Panel's 50 ms debounce (which capped "
        "a session at ~10 frames/s: 10.5 frames/s measured with one frame client)",
        "Panel's 50 ms debounce for every report",
    ),
)

#: Whether the short path is taken (Panel and param in their tested ranges).
SHORT_PATH = version_tested("panel") and version_tested("param")

if SHORT_PATH:
    from param.parameterized import _syncing


class BrowserReports:
    """Mixin (before ``JSComponent`` in the bases) for a component whose browser writes reports.

    A subclass names its report parameters in three class attributes; on the tested versions
    they map to Panel's private knobs (see :data:`PRIVATE_USES`), elsewhere they do nothing.

    Attributes:
        direct_reports: parameters set directly when a message holds nothing else (no renames,
            transforms, read-only or constant flags on them).
        idle_reports: parameters whose change marks no session busy and sends nothing back.
        urgent_reports: parameters processed on the next tick instead of after Panel's debounce.
    """

    direct_reports: ClassVar[frozenset[str]] = frozenset()
    idle_reports: ClassVar[tuple[str, ...]] = ()
    urgent_reports: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if SHORT_PATH:
            cls._busy__ignore = list(cls.idle_reports)
            cls._priority_changes = list(cls.urgent_reports)

    if SHORT_PATH:

        def _process_events(self, events: dict) -> None:
            if not events or not set(events) <= self.direct_reports:
                super()._process_events(events)
                return
            doc = panel_state.curdoc
            if doc is not None:
                self._in_process__events[doc] = events
            try:
                with _syncing(self, list(events)):  # not echoed back to the browser
                    self.param.update(**events)
            finally:
                if doc is not None:
                    self._in_process__events.pop(doc, None)

        def _update_properties(self, *events, doc):
            if events and all(event.name in self.idle_reports for event in events):
                return {}
            return super()._update_properties(*events, doc=doc)
