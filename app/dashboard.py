"""The dashboard shell: a Bootstrap template with one tab per capability.

Each capability registers one line in :data:`TABS`: a title and ``"module:Class"`` naming a
``pn.viewable.Viewer`` constructed per session with no arguments. A tab whose module fails
to import or build shows the error in place; the other tabs keep working.
"""

from __future__ import annotations

import html
import importlib
import traceback

import panel as pn

__all__ = ["TABS", "build_dashboard", "build_tabs", "load_view_class"]

#: ``(title, "module:Class")`` for each tab, in display order. Append one line per tab.
TABS: list[tuple[str, str]] = [
    ("Simulate", "app.views.simulate:SimulateView"),
    ("Forces", "app.views.forces:ForcesView"),
    ("Inference", "app.views.inference:InferenceView"),
    ("Ensembles", "app.views.ensembles:EnsemblesView"),
]

ACCENT = "#1f4e79"

_ABOUT = """
### N-body Explorer

A differentiable, jit-compiled **JAX** N-body simulator, driven live.

Each tab has its own controls on its left. Settings of the *Simulate* tab live in the
URL: copy the address bar to share a setup.

Run it yourself: `panel serve app`.
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


def build_tabs(tabs: list[tuple[str, str]] | None = None) -> pn.Tabs:
    """One ``pn.Tabs`` with a freshly constructed view per registered tab.

    Args:
        tabs: ``(title, "module:Class")`` entries; defaults to :data:`TABS`.
    """
    items = []
    for title, spec in TABS if tabs is None else tabs:
        try:
            view = load_view_class(spec)()
        except Exception as error:  # noqa: BLE001 - one broken tab must not take the app down
            view = _error_panel(title, spec, error)
        items.append((title, view))
    if not items:
        items.append(("About", pn.pane.Markdown(_ABOUT)))
    return pn.Tabs(*items, dynamic=True, sizing_mode="stretch_both", name="dashboard-tabs")


def build_dashboard(tabs: list[tuple[str, str]] | None = None) -> pn.template.BootstrapTemplate:
    """The whole dashboard for one session (also displays in Jupyter after ``pn.extension()``)."""
    template = pn.template.BootstrapTemplate(
        title="N-body Explorer",
        header_background=ACCENT,
        sidebar_width=260,
        collapsed_sidebar=True,
    )
    template.sidebar.append(pn.pane.Markdown(_ABOUT, sizing_mode="stretch_width"))
    template.main.append(build_tabs(tabs))
    return template
