"""A custom component's model definition, received again, accepted without a console warning.

Bokeh sends the definition of a data model (the Python-side class behind a Panel
``JSComponent``: ``OrbitScene1``, ``KeyboardShortcuts1``) inside each message that brings one
of its instances, and BokehJS's ``ModelResolver.register`` keeps the first definition and logs
"Model 'OrbitScene1' was already registered with this resolver" for every later one. A tab
built when first opened (the Lessons tab's own Simulate view) arrives in such a later message,
so opening it warned once per component (issue 28 item 6). :func:`install_quiet_model_defs`
makes the browser keep the first definition silently, as BokehJS does anyway; it relies on
``ModelResolver`` (:data:`PRIVATE_USES`), so it is installed only on the tested Bokeh versions.
"""

from __future__ import annotations

from nbody_explorer.compat import PrivateUse, version_tested

__all__ = ["PRIVATE_USES", "QUIET_MODEL_DEFS_JS", "install_quiet_model_defs"]

PRIVATE_USES = (
    PrivateUse(
        "bokeh", "Bokeh.require('core/resolvers').ModelResolver.prototype.register (BokehJS 3.9)",
        "no console warning when a lazily built tab brings a component definition again "
        "(tests/ui/test_quiet_console_ui.py: zero console entries over every tab)",
        "not installed: BokehJS logs 'Model ... was already registered' once per component when the "
        "Lessons tab opens; nothing else changes",
    ),
)

# Runs in the browser when the page is ready. A name already known keeps its first definition,
# exactly as BokehJS's own register does, minus the console line; force=true passes through.
QUIET_MODEL_DEFS_JS = """
const resolvers = Bokeh.require("core/resolvers");
const proto = resolvers.ModelResolver.prototype;
if (!proto.__nbodyQuietRedefinitions) {
  const register = proto.register;
  proto.register = function (model, force = false) {
    if (!force && this.get(model.__qualified__) != null) {
      return;
    }
    return register.call(this, model, force);
  };
  proto.__nbodyQuietRedefinitions = true;
}
"""


def install_quiet_model_defs(document) -> bool:
    """Run :data:`QUIET_MODEL_DEFS_JS` when ``document`` (a Bokeh ``Document``) is ready in the
    browser, on the tested Bokeh versions only.

    Returns:
        Whether it was installed.
    """
    if not version_tested("bokeh"):
        return False
    from bokeh.models import CustomJS

    document.js_on_event("document_ready", CustomJS(code=QUIET_MODEL_DEFS_JS))
    return True
