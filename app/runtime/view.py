"""The base class of the tabs' views: one session runner, messages, and jobs with their outcome.

Contract: a :class:`SessionView` owns (or, for a panel inside another view, shares) the
:class:`~nbody_explorer.runtime.session.SessionRunner` of its session; :meth:`~SessionView.notify` shows
a message, :meth:`~SessionView.run_job` runs work on the pool under a name and then calls one
of done / failed / interrupted in the session, and :meth:`~SessionView.job_running` says whether
the job of that name still computes. A view keeps its widgets and drawing; this is its plumbing.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import panel as pn

from nbody_explorer.runtime.document import in_session_callback
from nbody_explorer.runtime.messages import show_message
from nbody_explorer.runtime.scheduler import Job, queue_text
from nbody_explorer.runtime.session import SessionRunner

__all__ = ["RETRY_AFTER_S", "SessionView"]

_LOG = logging.getLogger(__name__)

#: Seconds before a job that stopped only because the page's connection was gone (a websocket
#: that Bokeh reconnects: seconds, not minutes) is asked for again; once the session is
#: destroyed nothing more runs.
RETRY_AFTER_S = 1.0


class SessionView(pn.viewable.Viewer):
    """A ``pn.viewable.Viewer`` on one session runner (Panel's ``SessionTaskRunner`` pattern).

    Args:
        label: the runner's name in the server log (``"Ensembles"``).
        runner: share this runner (a panel inside another view) instead of building one;
            a new runner captures ``pn.state.curdoc``, so build the view inside its session.
        **params: the view's parameters (``state=...``).

    A subclass that calls :meth:`notify` sets ``self.message`` (a ``pn.pane.Alert``) first.
    """

    def __init__(self, *, label: str = "view", runner: SessionRunner | None = None, **params):
        super().__init__(**params)
        self.runner = SessionRunner(label) if runner is None else runner
        self._named_jobs: dict[str, Job] = {}
        # Bumped by every run_job and cancel_job of a name: a retry of an older job of that
        # name (after a reconnect) is dropped, so a cancelled job never comes back.
        self._job_generations: dict[str, int] = {}

    # ------------------------------------------------------------------ session
    @property
    def served(self) -> bool:
        """Whether this view lives in a served session (else: notebook or tests, where work
        runs at once on the caller's thread)."""
        return self.runner.served

    def in_session(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` under this session's document lock (from any thread), or now when
        not served; dropped once the session is gone."""
        self.runner.in_session(fn)

    def write_in_order(self, fn: Callable[[], None]) -> None:
        """Run ``fn()``, a write of page state (a status line, which buttons are enabled), so
        that it reaches the page in order with the session callbacks' writes.

        Served, outside a session callback (in a widget callback that Panel runs), a model
        change goes out on Panel's own write queue, which Panel defers while the websocket is
        busy; a session callback's change goes out on Bokeh's. An older write could then arrive
        after a newer one and stay, since the server's model already holds the newer value (the
        Inference tab's Stop button enabled after the run had finished). There ``fn`` runs a
        tick later in a session callback, and so reads the state of that moment; elsewhere
        (in a session callback, or not served) at once.
        """
        if self.served and not in_session_callback():
            self.in_session(fn)
        else:
            fn()

    # ------------------------------------------------------------------ messages
    def notify(self, text: str, *, level: str = "error") -> None:
        """Show ``text`` (quoted user text is escaped) in this view's message box, in place
        (never a toast over the plots).

        Args:
            text: the message.
            level: ``"error"``, ``"warning"`` or ``"info"``.
        """
        show_message(self.message, text, level=level)

    def queue_line(self, *, name: str) -> pn.pane.HTML:
        """A line that shows this session's place in the server's queue while its next job
        waits for a slot ("waiting: 2 ahead of you"), hidden otherwise.

        Args:
            name: the pane's name (browser tests find it by name).
        """
        line = pn.pane.HTML("", visible=False, name=name, sizing_mode="stretch_width")

        def show(*_events) -> None:
            text = queue_text(self.runner.queue_position)
            line.object = f"<em>{text}</em>" if text else ""
            line.visible = bool(text)

        self.runner.param.watch(show, ["queue_position"])
        return line

    # ------------------------------------------------------------------ jobs
    def job(self, name: str) -> Job | None:
        """The job :meth:`run_job` started under ``name``, until its outcome is handed to the
        view (or it is dropped with :meth:`cancel_job`); None otherwise."""
        return self._named_jobs.get(name)

    def job_running(self, name: str, *, message: str | None = None) -> bool:
        """Whether the job under ``name`` still computes; if so and ``message`` is given, the
        message is shown (level info, e.g. "An ensemble is already running.")."""
        job = self._named_jobs.get(name)
        running = job is not None and not job.finished.is_set()
        if running and message is not None:
            self.notify(message, level="info")
        return running

    def run_job(self, name: str, work: Callable[[Job], Any], *, done: Callable[[Any], None] | None = None,
                failed: Callable[[BaseException], None] | None = None,
                interrupted: Callable[[], None] | None = None, report_position: bool = True) -> Job:
        """Run ``work(job)`` on the pool as this view's job ``name``; then, in the session, one of
        ``done(result)``, ``failed(error)`` or ``interrupted()`` (see
        :meth:`SessionRunner.submit <nbody_explorer.runtime.session.SessionRunner.submit>`), after the
        job has left :meth:`job`. Not served, all of it happens before this returns.

        Args:
            name: the kind of job ("ensemble", "timing"): :meth:`job` and :meth:`job_running` ask by it.
            work: runs on a pool thread; must not touch the page; calls ``job.checkpoint()``
                between bounded pieces.
            done: called with ``work``'s result.
            failed: called with the exception ``work`` raised (default: logged).
            interrupted: called when the job stopped only because the browser's connection
                was gone (it may come back: the view must be able to carry on). Default: the
                same job is asked for again a second later (:data:`RETRY_AFTER_S`), until it
                runs or the session is destroyed; a view that left a "computing…" state for a
                callback that never came stayed on it for good (the Forces tab, under CI load).
            report_position: keep the runner's ``queue_position`` up to date while it waits.

        Returns:
            The job (``job.cancel()`` stops it; :meth:`cancel_job` also forgets it).
        """
        submitted: list[Job] = []
        handed = False

        def outcome(callback: Callable | None, default: Callable | None = None) -> Callable:
            def hand(*args) -> None:
                nonlocal handed
                handed = True
                if submitted and self._named_jobs.get(name) is submitted[0]:
                    del self._named_jobs[name]  # a newer job of this name stays
                if callback is not None:
                    callback(*args)
                elif default is not None:
                    default(*args)
            return hand

        generation = self._job_generations[name] = self._job_generations.get(name, 0) + 1

        def again() -> None:
            if self._job_generations.get(name) == generation:  # not cancelled, nothing newer asked for
                self.run_job(name, work, done=done, failed=failed, report_position=report_position)

        def retry_later() -> None:
            self.runner.later(RETRY_AFTER_S, again)

        job = self.runner.submit(
            work, done=outcome(done), failed=outcome(failed, self._log_failure(name)),
            interrupted=outcome(interrupted, retry_later), report_position=report_position,
        )
        submitted.append(job)
        if not handed:
            self._named_jobs[name] = job
        return job

    def cancel_job(self, name: str) -> None:
        """Stop the job under ``name`` (dropped if queued; its outcome never comes) and forget it."""
        self._job_generations[name] = self._job_generations.get(name, 0) + 1
        job = self._named_jobs.pop(name, None)
        if job is not None:
            job.cancel()

    def _log_failure(self, name: str) -> Callable[[BaseException], None]:
        def log(error: BaseException) -> None:
            _LOG.error("%s: job %r failed", self.runner.label, name, exc_info=error)
        return log
