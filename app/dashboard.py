"""The dashboard shell: a Bootstrap template with one tab per capability.

Each capability registers one line in :data:`TABS`: a title and ``"module:Class"`` naming a
``pn.viewable.Viewer`` constructed per session with no arguments. A tab whose module fails
to import or build shows the error in place; the other tabs keep working.

Tabs are built when first opened: the first tab at once, every other one starts as a light
placeholder that is replaced by its view the first time the tab is selected, so opening a
page (or a bare ``GET /app``) costs one view, not four.
"""

from __future__ import annotations

import html
import importlib
import traceback
from functools import partial

import panel as pn
from panel.io.state import set_curdoc

from nbody_explorer.runtime.periodic import Periodic
from nbody_explorer.views.plot_defaults import apply_plot_defaults

__all__ = [
    "TABS",
    "build_dashboard",
    "build_tabs",
    "load_view_class",
    "NbodyDesign",
    "FOCUS_RING_CSS",
    "serve_session",
    "session_count_readout",
    "session_full_page",
    "session_refusal",
    "projector_toggle",
]

#: ``(title, "module:Class")`` for each tab, in display order. Append one line per tab.
TABS: list[tuple[str, str]] = [
    ("Simulate", "nbody_explorer.views.simulate:SimulateView"),
    ("Forces", "nbody_explorer.views.forces:ForcesView"),
    ("Inference", "nbody_explorer.views.inference:InferenceView"),
    ("Ensembles", "nbody_explorer.views.ensembles:EnsemblesView"),
    ("Emulator", "nbody_explorer.views.emulator:EmulatorView"),
    ("Chaos", "nbody_explorer.views.chaos:ChaosView"),
    ("Lessons", "nbody_explorer.views.lessons:LessonsView"),
]

ACCENT = "#1f4e79"

_ABOUT = """
### N-body Explorer

A differentiable, jit-compiled **JAX** N-body simulator, driven live.

Each tab has its own controls on its left. Settings of the *Simulate* tab live in the
URL: copy the address bar to share a setup.

Run it yourself: `nbody serve` (or `panel serve app --address 127.0.0.1`).
"""


def load_view_class(spec: str) -> type:
    """Import ``"package.module:Class"`` and return the class.

    Raises:
        ValueError: if ``spec`` is not of the form ``module:Class``.
    """
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"tab spec must look like 'package.module:Class', got {spec!r}")
    return getattr(importlib.import_module(module_name), class_name)


def _error_panel(title: str, spec: str, error: BaseException) -> pn.viewable.Viewable:
    detail = html.escape("".join(traceback.format_exception_only(type(error), error)).strip())
    return pn.pane.Alert(
        f"**The {html.escape(title)} tab could not be built** ({html.escape(spec)}):\n\n"
        f"<pre>{detail}</pre>",
        alert_type="danger",
        name=f"tab-error-{title}",
    )


def _build_view(title: str, spec: str) -> pn.viewable.Viewable:
    try:
        view = load_view_class(spec)()
        apply_plot_defaults(view)  # empty plots without console warnings; readable log ticks
        return view
    except Exception as error:  # noqa: BLE001 - one broken tab must not take the app down
        return _error_panel(title, spec, error)


def build_tabs(tabs: list[tuple[str, str]] | None = None, *, lazy: bool = True) -> pn.Tabs:
    """One ``pn.Tabs`` with a view per registered tab.

    Args:
        tabs: ``(title, "module:Class")`` entries; defaults to :data:`TABS`.
        lazy: build only the first view now; each other tab holds a placeholder
            (``name="tab-placeholder-<title>"``) until it is first selected.
    """
    entries = TABS if tabs is None else tabs
    if not entries:
        return pn.Tabs(("About", pn.pane.Markdown(_ABOUT)), dynamic=True, sizing_mode="stretch_both", name="dashboard-tabs")
    slots, pending = [], {}
    for index, (title, spec) in enumerate(entries):
        if index == 0 or not lazy:
            slots.append((title, _build_view(title, spec)))
            continue
        slot = pn.Column(
            pn.pane.Markdown(f"Opening the {html.escape(title)} tab…", name=f"tab-placeholder-{title}"),
            sizing_mode="stretch_both",
        )
        pending[index] = (title, spec, slot)
        slots.append((title, slot))
    tabs_widget = pn.Tabs(*slots, dynamic=True, sizing_mode="stretch_both", name="dashboard-tabs")
    # The session's document, current while its views are built: a view's runner captures
    # ``pn.state.curdoc`` and sends every job's outcome there. A tab opened later is built in a
    # widget callback, where the current document is whatever Panel or Bokeh left current on
    # that thread (Bokeh can leave another, destroyed session's document current:
    # app/compat/session.py); a Forces tab whose first comparison went there said
    # "Computing the forces ..." for good.
    document = pn.state.curdoc

    def build_on_first_open(event) -> None:
        entry = pending.pop(event.new, None)
        if entry is not None:
            title, spec, slot = entry
            with set_curdoc(document):
                slot.objects = [_build_view(title, spec)]

    if pending:
        tabs_widget.param.watch(build_on_first_open, "active")
    titles = [title for title, _ in entries]
    if "lesson" in (getattr(pn.state, "session_args", None) or {}) and "Lessons" in titles:
        tabs_widget.active = titles.index("Lessons")  # ?lesson=NAME&step=K opens the Lessons tab
    return tabs_widget


def session_count_readout(live_fn, cap: int, *, period_ms: int = 5000) -> pn.pane.Markdown:
    """A small header text "Sessions: k / cap", refreshed every ``period_ms`` in a served page,
    so the lecturer sees how many browsers are connected."""
    readout = pn.pane.Markdown(
        f"Sessions: {live_fn()} / {cap}", name="session-count", margin=(0, 10),
        height=36,  # fixed: its rendered height varied (37 or 49 px), moving the whole page by 1.4 px
        styles={"color": "white", "font-size": "0.9em"},
    )

    def refresh() -> None:
        text = f"Sessions: {live_fn()} / {cap}"
        if readout.object != text:
            readout.object = text

    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        Periodic(refresh, period_ms=period_ms).start()  # stopped when the session is destroyed
    return readout


def _refusal_text(answer) -> str:
    """The refusal of a session past a cap, in words (Markdown)."""
    from nbody_explorer.runtime.admission import ADDRESS_FULL

    if answer.reason == ADDRESS_FULL:
        return (
            "### Too many dashboard tabs from this computer\n\n"
            f"This computer already has {answer.cap} N-body Explorer tabs open on this server, the most "
            "one address may hold. Close one of them, then reload this page.\n\n"
            "(Computers behind one router share one address. The lecturer can raise the limit with "
            "`nbody serve --max-sessions-per-address N` or `NBODY_MAX_SESSIONS_PER_ADDRESS`; 0 turns it off.)"
        )
    return (
        "### The dashboard is full right now\n\n"
        f"{answer.live} of {answer.cap} sessions are in use on this server. A closed tab frees its place "
        "within a few seconds: please reload this page in a moment.\n\n(The lecturer can raise the cap with "
        "`nbody serve --max-sessions N` or `NBODY_MAX_SESSIONS`.)"
    )


def session_refusal(answer) -> pn.pane.Alert:
    """The message a session refused by :func:`nbody_explorer.runtime.admission.admit_session` shows."""
    return pn.pane.Alert(_refusal_text(answer), alert_type="warning", name="sessions-full")


def session_full_page(answer) -> pn.template.BootstrapTemplate:
    """What a browser gets past a session cap: a friendly page, no dashboard (cheap).

    Args:
        answer: the refusing :class:`~nbody_explorer.runtime.admission.Admission`.
    """
    template = pn.template.BootstrapTemplate(title="N-body Explorer", header_background=ACCENT, busy_indicator=None,
                                             design=NbodyDesign)
    template.main.append(session_refusal(answer))
    return template


#: Projector mode (a class on <html> and <body>): larger text and high contrast. Panel's
#: widgets size their text in rem (measured: buttons 0.8rem = 12.8 px), so a larger root font
#: reaches controls inside their shadow DOM; the custom properties --bokeh-font-size /
#: --font-size inherit into it too. (Text drawn on plot canvases keeps its size.)
PROJECTOR_CSS = """
html.nbody-projector { font-size: 24px; }
body.nbody-projector { --bokeh-font-size: 20px; --font-size: 20px; font-size: 20px;
  --panel-on-background-color: #000; color: #000; background: #fff; }
body.nbody-projector *:focus-visible { outline: 4px solid #D55E00 !important; outline-offset: 2px; }
body:not(.nbody-projector) *:focus-visible { outline: 2px solid #0072B2; outline-offset: 1px; }
"""


#: A visible focus ring inside every component's shadow root (the page's own CSS does not reach
#: into them), and the open tab's header in bold.
FOCUS_RING_CSS = """
:focus-visible { outline: 3px solid #0072B2 !important; outline-offset: 2px !important;
  box-shadow: 0 0 0 2px #ffffff !important; }
.bk-tab.bk-active { font-weight: 600; }
"""


class NbodyDesign(pn.theme.Bootstrap):
    """The template's design: Panel's Bootstrap design plus :data:`FOCUS_RING_CSS` as a stylesheet
    of every component (Panel's public ``Design.modifiers``; ``Inherit`` keeps Bootstrap's own)."""

    modifiers = {
        **pn.theme.Bootstrap.modifiers,
        pn.viewable.Viewable: {"stylesheets": [pn.theme.Inherit, FOCUS_RING_CSS]},
    }


def projector_toggle() -> pn.widgets.Toggle:
    """Header toggle for projector mode: large fonts, high contrast, sidebar collapsed
    (all in the browser: a class on <body>, no server round trip)."""
    toggle = pn.widgets.Toggle(label="Projector mode", value=False, width=160, name="projector-toggle")
    toggle.jscallback(value="""
document.body.classList.toggle("nbody-projector", cb_obj.active);
document.documentElement.classList.toggle("nbody-projector", cb_obj.active);
if (cb_obj.active) { document.body.classList.add("collapsed"); const s = document.getElementById("sidebar");
  if (s) { s.classList.add("collapsed"); } }
""")
    return toggle


def build_dashboard(
    tabs: list[tuple[str, str]] | None = None, *, lazy: bool = True, content: pn.viewable.Viewable | None = None
) -> pn.template.BootstrapTemplate:
    """The whole dashboard for one session (also displays in Jupyter after ``pn.extension()``).

    Args:
        tabs: ``(title, "module:Class")`` entries; defaults to :data:`TABS`.
        lazy: build each tab but the first when it is first opened (see :func:`build_tabs`).
        content: shown instead of the tabs (``serve_session`` puts a placeholder there and
            fills it once the browser has connected).
    """
    template = pn.template.BootstrapTemplate(
        design=NbodyDesign,  # focus rings inside every widget's shadow root
        raw_css=[PROJECTOR_CSS],
        title="N-body Explorer",
        header_background=ACCENT,
        sidebar_width=260,
        collapsed_sidebar=True,
        # No busy spinner: Panel keeps one process-wide busy flag and updates every session's
        # spinner when it changes, so each periodic callback or event of any session redrew
        # the spinner of all of them (O(sessions^2) page updates; measured with cProfile at
        # 10 playing sessions: ~45 % of the event loop's CPU). The Simulate status line says
        # "compiling" and the place in the queue instead.
        busy_indicator=None,
    )
    template.sidebar.append(pn.pane.Markdown(_ABOUT, sizing_mode="stretch_width"))
    template.header.append(projector_toggle())
    template.main.append(build_tabs(tabs, lazy=lazy) if content is None else content)
    return template


def serve_session() -> pn.viewable.Viewable:
    """What ``app/main.py`` runs for each browser session of a served app.

    Admits the session against the caps (``NBODY_MAX_SESSIONS`` viewers in all,
    ``NBODY_MAX_SESSIONS_PER_ADDRESS`` per client address; a page request that never connects
    its websocket is not a viewer, and is destroyed after ``NBODY_CONNECT_TIMEOUT_S``; past a cap the session gets :func:`session_full_page`),
    installs the session guards, and serves a light shell whose tabs are built once the
    browser has connected (``pn.state.onload``), after a second check of the caps (pages
    requested together all pass the first). A plain ``GET /app`` costs milliseconds, not a
    dashboard built on the event loop. Outside a server (Bokeh's DirectoryHandler in tests)
    the tabs are built at once.

    Everything the callbacks need is bound here, in a regular module: Bokeh discards
    ``main.py``'s own namespace when its session ends.
    """
    from nbody_explorer.compat.accessibility import install_accessibility
    from nbody_explorer.compat.model_defs import install_quiet_model_defs
    from nbody_explorer.compat.query import install_query_guard, oversized_query_values
    from nbody_explorer.compat.patch_guard import install_patch_guard
    from nbody_explorer.compat.upload import install_upload_guard
    from nbody_explorer.limits import (
        connect_timeout_from_environment,
        disconnect_grace_from_environment,
        max_sessions_from_environment,
        max_sessions_per_address_from_environment,
    )
    from nbody_explorer.reliability import install_session_guards
    from nbody_explorer.runtime.admission import SESSIONS, admit_session, confirm_session
    from nbody_explorer.runtime.coordinator import install_from_environment
    from nbody_explorer.runtime.messages import escape_markdown, show_message
    from nbody_explorer.runtime.scheduler import POOL

    install_from_environment(POOL, SESSIONS)  # NBODY_RUNTIME_DIR: the caps and slots of all processes
    from nbody_explorer.views.page_values import widget_refusal

    install_query_guard()  # a 4301-digit query value must not blank the page
    cap, per_address = max_sessions_from_environment(), max_sessions_per_address_from_environment()
    SESSIONS.disconnect_grace_s = disconnect_grace_from_environment()
    # Unregistered when the session is destroyed; handed back to Bokeh if it never connects.
    answer = admit_session(cap, per_address=per_address, connect_timeout_s=connect_timeout_from_environment())
    if not answer:
        return session_full_page(answer).servable(title="N-body Explorer")
    document = pn.state.curdoc
    context = document.session_context if document is not None else None
    pn.config.disconnect_notification = (
        "Lost the connection to the server (a network drop, a server restart, or a message over "
        "its size limit). Reload the page to start again."
    )
    served = context is not None
    holder = None
    if served:
        holder = pn.Column(
            pn.pane.Markdown("Loading the dashboard…", name="dashboard-loading"), sizing_mode="stretch_both"
        )
    dashboard = build_dashboard(content=holder)
    message_box = install_session_guards(dashboard)  # a widget callback's exception becomes a message
    arguments = getattr(getattr(context, "request", None), "arguments", None) or {}
    dropped = [key for key, values in arguments.items() if oversized_query_values(values)]
    if dropped:
        message_box.object = escape_markdown(
            "Ignored link values with more digits than a number may have (4300): " + ", ".join(map(str, dropped))
        )
        message_box.visible = True
    if served:
        from nbody_explorer.limits import LIMITS

        install_upload_guard(document, LIMITS.max_upload_bytes)
        # Every value the page sends passes the validation boundary before Bokeh applies it;
        # Bokeh's error replies carry no traceback (issue 26).
        install_patch_guard(document, check=widget_refusal, notify=partial(show_message, message_box))
        install_accessibility(document)  # tab keys, ARIA names (issue 14); focus rings: NbodyDesign
        install_quiet_model_defs(document)  # a lazily built tab's component definitions: no console warning
        dashboard.header.append(session_count_readout(lambda: SESSIONS.live, cap))

        def build_on_load() -> None:
            confirmed = confirm_session(cap, per_address=per_address)
            holder.objects = [build_tabs() if confirmed else session_refusal(confirmed)]

        pn.state.onload(build_on_load)
    return dashboard.servable(title="N-body Explorer")
