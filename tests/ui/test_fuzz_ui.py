"""Fuzz every widget of every tab over the websocket, as a tampered page would (issue 26).

A direct Bokeh-protocol client (tests/hostile_client.py) opens the served app, opens every
tab, and sends each value widget NaN, ±inf, the wrong type, a number just past its ends, an
index past its options. Goals: every refusal is visible on the page (a message naming the
widget's label, or that the change was not applied) and the widget is sent its kept value
again; zero tracebacks, paths or class names in anything the page can read (texts,
notifications, Bokeh's ERROR replies); the session and the server keep serving. URL keys get
the same values in one link. No browser needed: the client reads what the server sends.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import urllib.parse

from nbody_explorer.compat.patch_guard import ERROR_TEXT, FAILED_PATCH_TEXT
from nbody_explorer.state.links import URL_PARAMETERS
from hostile_client import HostileClient
from own_loop import run_on_own_loop

CONNECT_TIMEOUT_S = 240.0  # page, websocket and the Simulate tab on a busy 2-core machine
REPLY_TIMEOUT_S = 30.0
TAB_TIMEOUT_S = 180.0

#: Anything internal: a traceback, a file path, a class or exception name, a parameter's owner.
INTERNAL = re.compile(r"Traceback|site-packages|\w\.py\b|<class|\bparameter '|\b[A-Z][a-z]+[A-Z]\w*\.[a-z_]+\b|"
                      r"\b(Value|Type|Index|Key|Overflow|Attribute|Runtime|Unset)Error\b|SimulationState")

_WIDGETS = ("Slider", "Spinner", "CustomSelect", "Select", "RadioButtonGroup", "Checkbox", "Toggle", "CheckboxGroup",
            "CheckboxButtonGroup")


def _hostile_values(model: dict) -> list:
    """What a tampered page sends to this widget: wrong types, non-finite, just past its ends."""
    name, attributes = model["name"] or "", model["attributes"]
    values: list = ["abc", math.nan, math.inf, -math.inf]
    if name.endswith("Slider"):
        values += [attributes.get("start", 0) - 1, attributes.get("end", 0) + 1]
    elif name.endswith("Spinner"):
        if attributes.get("low") is not None:
            values.append(attributes["low"] - 1)
        if attributes.get("high") is not None:
            values.append(attributes["high"] + 1)
    elif name.endswith("Select"):
        values = ["<img src=x onerror=alert(1)>", -1, None, [1]]
    elif name.endswith("RadioButtonGroup"):
        values = [-1, len(attributes.get("labels") or []), "abc", 0.5]
    elif name.endswith(("CheckboxGroup", "CheckboxButtonGroup")):
        values = [[-1], [99], "abc"]
    else:  # Checkbox, Toggle: true or false only
        values = ["abc", 1, None]
    return values


def _attr(model: dict) -> str:
    return "active" if (model["name"] or "").endswith(("Checkbox", "Toggle", "RadioButtonGroup", "CheckboxGroup",
                                                       "CheckboxButtonGroup")) else "value"


def _widgets(client: HostileClient) -> list[str]:
    ids = []
    for model_id in sorted(client.live_ids()):
        model = client.models[model_id]
        name = (model["name"] or "").rsplit(".", 1)[-1]
        if name in _WIDGETS and not model["attributes"].get("disabled"):
            ids.append(model_id)
    return ids


async def _open_every_tab(client: HostileClient) -> None:
    tabs = [i for i, m in client.models.items() if (m["name"] or "").endswith("Tabs") and len(m["attributes"].get("tabs") or []) > 3]
    assert tabs, "the dashboard's tabs were not found"
    count = len(client.models[tabs[0]]["attributes"]["tabs"])
    for index in range(1, count):
        before = len(client.models)
        await client.change(tabs[0], "active", index)
        await client.wait_for(lambda: len(client.models) > before + 3, TAB_TIMEOUT_S)
    await client.change(tabs[0], "active", 0)
    # Until no new model arrived for 3 s: every tab built (some build in two steps).
    settled, count = time.monotonic(), len(client.models)
    while time.monotonic() - settled < 3.0:
        await asyncio.sleep(0.2)
        if len(client.models) != count:
            settled, count = time.monotonic(), len(client.models)


async def _fuzz(base_url: str) -> dict:
    client = HostileClient(base_url, "?preset=plummer&n=32")
    await client.connect(timeout_s=CONNECT_TIMEOUT_S)
    assert await client.wait_for(lambda: client.find(name="Toggle", label="▶ Play"), CONNECT_TIMEOUT_S)
    await _open_every_tab(client)
    cases, silent, not_reverted = 0, [], []
    for model_id in _widgets(client):
        model = client.models[model_id]
        attr = _attr(model)
        for value in _hostile_values(model):
            start, changes = len(client.texts), len(client.changes)
            msgid = await client.change(model_id, attr, value)
            assert await client.wait_for(lambda: msgid in client.replies, REPLY_TIMEOUT_S), "no reply: server stuck?"

            label = model["attributes"].get("title") or model["attributes"].get("label") or ""

            def refused() -> bool:
                # A new message, or the page's message box already saying this very refusal
                # (the same text again changes nothing on the page).
                return any(" must be " in text or FAILED_PATCH_TEXT in text for text in client.texts_since(start)) \
                    or any(f"{label} must be " in text for text in client.shown_texts())

            if not await client.wait_for(refused, REPLY_TIMEOUT_S):
                silent.append((model["attributes"].get("title") or model["attributes"].get("label"), attr, value))
            elif not await client.wait_for(lambda: any(change[:2] == (model_id, attr)
                                                       for change in client.changes[changes:]), REPLY_TIMEOUT_S):
                # The server sends the kept value back, so the widget stops showing the refused one.
                not_reverted.append((model["attributes"].get("title"), attr, value))
            cases += 1
    # A value Bokeh's own types refuse (not a widget's value): the ERROR reply names nothing internal.
    steps = client.find(title="Steps per frame")[0]
    start = len(client.texts)
    msgid = await client.change(steps, "start", "abc")
    await client.wait_for(lambda: msgid in client.replies, REPLY_TIMEOUT_S)
    error_reply = client.replies[msgid]
    await client.wait_for(lambda: any(FAILED_PATCH_TEXT in t for t in client.texts_since(start)), REPLY_TIMEOUT_S)
    still_open = client.open
    client.close()
    # The server keeps serving: a new session gets its dashboard.
    fresh = HostileClient(base_url)
    await fresh.connect(timeout_s=CONNECT_TIMEOUT_S)
    served = await fresh.wait_for(lambda: fresh.find(name="Toggle", label="▶ Play"), CONNECT_TIMEOUT_S)
    fresh.close()
    return {"cases": cases, "silent": silent, "not_reverted": not_reverted, "texts": client.texts,
            "error_reply": error_reply, "error_shown": any(FAILED_PATCH_TEXT in t for t in client.texts_since(start)),
            "still_open": still_open, "served": served}


def test_every_widget_of_every_tab_refuses_hostile_values_visibly_and_leaks_nothing(app_server):
    started = time.perf_counter()
    result = run_on_own_loop(_fuzz(app_server[0]))
    assert result["cases"] >= 100, result["cases"]  # every value widget of the Simulate tab and the header
    assert result["silent"] == [], f"refused with nothing on the page: {result['silent']}"
    assert result["not_reverted"] == [], f"the page kept the refused value: {result['not_reverted']}"
    leaks = [text for text in result["texts"] if INTERNAL.search(text)]
    assert leaks == [], f"internals in client-visible text: {leaks[:5]}"
    assert result["error_reply"] == {"msgtype": "ERROR", "content": {"text": ERROR_TEXT, "traceback": None}}
    assert result["error_shown"] and result["still_open"] and result["served"]
    print(f"{result['cases']} hostile widget values in {time.perf_counter() - started:.0f} s")


async def _open_link(base_url: str, query: str) -> HostileClient:
    client = HostileClient(base_url, query)
    await client.connect(timeout_s=CONNECT_TIMEOUT_S)
    assert await client.wait_for(lambda: client.find(name="Toggle", label="▶ Play"), CONNECT_TIMEOUT_S)
    return client


def test_every_url_key_with_hostile_values_is_refused_on_the_page_without_internals(app_server):
    async def run() -> list[str]:
        texts = []
        for raw in ("nan", "-inf", "-1", "9" * 400, "abc"):
            query = "?" + urllib.parse.urlencode({key: raw for key in URL_PARAMETERS.values()})
            client = await _open_link(app_server[0], query)
            await client.wait_for(lambda: any("Ignored invalid link settings" in t for t in client.texts), REPLY_TIMEOUT_S)
            texts += client.texts
            shown = " ".join(t for t in client.texts if "Ignored invalid link settings" in t)
            for key in URL_PARAMETERS.values():
                assert f"{key}={raw[:40]}: " in shown, (key, raw, shown[:300])
            client.close()
        return texts

    texts = run_on_own_loop(run())
    assert [text for text in texts if INTERNAL.search(text)] == []


#: Issue 21 item 5: a key alone sets its setting and the address the app rewrites keeps it.
ALONE = {"fps": "60", "trails": "false", "follow": "true", "distances": "log", "record_s": "7", "record_fps": "24",
         "record_format": ".gif", "record_size": "1280x720", "dt": "0.002", "softening": "0.05"}


def test_each_key_alone_survives_the_url_rewrite(app_server):
    async def run() -> dict:
        written = {}
        for key, raw in ALONE.items():
            client = await _open_link(app_server[0], f"?{key}={urllib.parse.quote(raw)}")

            def rewritten() -> dict:
                searches = [new for _, attr, new in client.changes if attr == "search" and isinstance(new, str)]
                query = urllib.parse.parse_qs(searches[-1].lstrip("?")) if searches else {}
                return query if "preset" in query else {}

            # The last rewrite holds every setting; an earlier one may still lack the key's final text.
            await client.wait_for(lambda: rewritten().get(key) == [raw], REPLY_TIMEOUT_S)
            written[key] = rewritten().get(key)
            client.close()
        return written

    written = run_on_own_loop(run())
    assert written == {key: [raw] for key, raw in ALONE.items()}
