"""The one Markdown escaper and the message box (app/runtime/messages.py)."""

from __future__ import annotations

import html
import re

import panel as pn
import pytest

from nbody_explorer.runtime.messages import dismissable, escape_markdown, show_message

#: Text that Panel's Markdown pane (markdown-it "gfm-like" with linkify, footnotes, definition
#: lists, task lists, emoji) would otherwise turn into markup.
HOSTILE = [
    '<img src=x onerror="window.__xss=7">.csv',
    "<script>alert(1)</script>",
    "**not bold** a_b [link](javascript:x) ~~strike~~ `code`",
    "# not a heading\n- not a list\n1. nor this\n2) nor this\n> nor a quote\n---\n===",
    "http://example.com/a_b, www.example.com, example.com, a@b.com, <http://x>",
    ":fire: Term\n: definition",
    "- [ ] task | a | b |",
    "$x^2$ and $$y$$ & &amp; &lt;",
    "warm-up of 1.5 s, ok.npz (c) -- ... \"quoted\" 'single'",
]


def _shown(markdown: str) -> tuple[str, list[str]]:
    """``(text a reader sees, tags other than <p>)`` of ``markdown`` rendered by Panel."""
    rendered = html.unescape(pn.pane.Markdown(markdown)._transform_object(markdown)["object"])  # Panel escapes once
    tags = re.findall(r"<(?!/?p>)[a-zA-Z/][^>]*>", rendered)
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip(), tags


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_is_shown_exactly_as_typed(text):
    shown, tags = _shown(escape_markdown(text))
    assert tags == []  # no link, image, emphasis, list, heading, code, table or script
    assert shown == text


def test_the_old_partial_escaping_left_live_links():
    """Why every punctuation character is escaped: Panel's renderer links bare URLs and
    domains (linkify), which escaping only emphasis, brackets and line starts missed."""
    shown, tags = _shown(r"http://example.com/a\_b")
    assert any(tag.startswith("<a ") for tag in tags) and "%5C" in " ".join(tags)  # a link, to the wrong place
    assert _shown(escape_markdown("http://example.com/a_b")) == ("http://example.com/a_b", [])


def test_escaping_keeps_line_breaks_and_cuts_a_flood():
    assert escape_markdown("a\r\nb\rc\nd") == "a\nb\nc\nd"
    assert escape_markdown("1.5") == r"1\.5"
    assert escape_markdown(12) == "12"
    long = escape_markdown("x" * 5000)
    assert long == "x" * 2000 + "…"
    assert escape_markdown("x" * 30, max_length=10) == "x" * 10 + "…"


def test_show_message_escapes_the_box_and_never_toasts(monkeypatch):
    # A toast (pn.state.notifications) covered the energy plot it warned about (issue 28):
    # messages go to the box only, whatever the level.
    toasts = []

    class Notifications:
        def __getattr__(self, kind):
            return lambda text, duration=0: toasts.append((kind, text))

    monkeypatch.setattr(type(pn.state), "notifications", property(lambda _self: Notifications()))
    box = pn.pane.Alert("", visible=False)
    show_message(box, "Could not load <b>x</b>.csv")
    assert box.visible and box.alert_type == "danger"
    assert _shown(box.object) == ("Could not load <b>x</b>.csv", [])
    show_message(box, "Energy error passed 0.01", level="warning")
    assert box.alert_type == "warning"
    show_message(box, "Loaded", level="info")
    assert box.alert_type == "info" and _shown(box.object)[0] == "Loaded"
    assert toasts == []


def test_dismissable_box_hides_with_its_button():
    box = pn.pane.Alert("", visible=False)
    row = dismissable(box, name="test-message")
    button = row.objects[1]
    assert row.name == "test-message" and button.label == "Dismiss" and not button.visible
    show_message(box, "Energy error passed 0.01", level="warning")
    assert box.visible and button.visible
    button.clicks += 1  # what a click does
    assert not box.visible and not button.visible
    show_message(box, "again", level="warning")  # a later message shows again
    assert box.visible and button.visible
