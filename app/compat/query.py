"""Panel's query-string parsing, made to survive values ``int()`` refuses.

Panel's ``Location`` parses the page's query with ``panel.io.location.parse_query`` whenever it
changes (watched on ``search``, whether or not anything is synced), converting every all-digit
value with ``int()``; one of 4301+ digits (past ``sys.get_int_max_str_digits()``, even under a
key the app never reads, like ``utm_id``) raised there and left a blank page. Panel has no
public hook for it, and raising Python's digit limit would undo its protection
(CVE-2020-10735), so :func:`install_query_guard` wraps that module attribute on the tested
Panel versions. Elsewhere nothing is patched: such a link can blank the page, while the
dashboard still names the dropped keys from the request (``oversized_query_values``).
"""

from __future__ import annotations

import logging
import sys
import urllib.parse

from nbody_explorer.compat import PrivateUse, version_tested

__all__ = ["PRIVATE_USES", "install_query_guard", "oversized_query_values"]

PRIVATE_USES = (
    PrivateUse(
        "panel", "panel.io.location.parse_query (module attribute replaced)",
        "a link with a 4301-digit value (utm_id=777...) loads the dashboard instead of a blank page "
        "(tests/ui/test_server_ui.py, tests/app/test_dashboard.py)",
        "not installed: such a link can blank the page; the dashboard still names the dropped keys",
    ),
)

_LOG = logging.getLogger(__name__)
_warned = False


def oversized_query_values(query, *, max_digits: int | None = None) -> list[str]:
    """Keys of ``query`` whose value is a run of digits too long for ``int()`` (Python refuses
    more than ``sys.get_int_max_str_digits()`` = 4300 digits).

    Args:
        query: ``"?a=1&b=..."``, or a list of one key's raw values (``bytes`` or ``str``, as in
            Bokeh's ``request.arguments``): then ``["value"]`` if any is too long, else ``[]``.
    """
    max_digits = sys.get_int_max_str_digits() if max_digits is None else max_digits
    if max_digits <= 0:
        return []
    if isinstance(query, str):
        pairs = urllib.parse.parse_qsl(query.lstrip("?"), keep_blank_values=True)
    else:
        pairs = [("value", v.decode("latin-1") if isinstance(v, bytes) else str(v)) for v in query]
    return [key for key, value in pairs if value.isdigit() and len(value) > max_digits]


def _safe_parse_query(original):
    def parse_query(query: str):
        try:
            return original(query)
        except ValueError:
            # A value int() refuses (4301+ digits): drop it, parse the rest as Panel would.
            bad = set(oversized_query_values(query))
            kept = [(k, v) for k, v in urllib.parse.parse_qsl(query.lstrip("?"), keep_blank_values=True) if k not in bad]
            return original("?" + urllib.parse.urlencode(kept))

    parse_query.nbody_safe = True
    parse_query.original = original  # Panel's own (tests put it back)
    return parse_query


def install_query_guard() -> bool:
    """Make Panel's query parsing drop values ``int()`` refuses (idempotent, process-wide).

    Returns:
        Whether the guard is installed (False outside the tested Panel versions, logged once).
    """
    import panel.io.location as location

    global _warned
    if getattr(location.parse_query, "nbody_safe", False):
        return True
    if not version_tested("panel") or not callable(getattr(location, "parse_query", None)):
        if not _warned:
            _warned = True
            _LOG.warning("query guard not installed on this Panel: a link value of 4301+ digits can blank the page")
        return False
    location.parse_query = _safe_parse_query(location.parse_query)
    return True
