"""The server runtime of the dashboard: where a session's work runs and how it reaches the page.

One concern per module, each stating its contract in its docstring: ``scheduler`` (the
process's fair pool for JAX work), ``session`` (one runner per view: document, jobs, stop
event, frames in flight), ``document`` (calls under a document's lock), ``periodic`` (a
session's periodic callbacks, stopped with the session), ``admission`` (the session cap and
memory release), ``coordinator`` (the caps, slots and waiting line shared by several server
processes), ``health`` (``/health``: a stalled piece of work), ``messages`` (escaping
and message boxes) and ``view`` (``SessionView``, the base class of the tabs' views). Never imports ``nbody_explorer.views`` or ``nbody_explorer.state``.
"""
