"""A tampered page without a browser: speaks Bokeh's websocket protocol and sends anything.

What a modified page (or a script) can send that no browser widget would: a slider's index past
its options, ``"abc"`` for a number, NaN, ±inf, -1, a 400-digit number. :class:`HostileClient`
opens a session the way a page does (GET ``/app?query``, the token from the page, ``/app/ws``,
PULL-DOC, ``document_ready``), keeps every model the server describes (so the test can find
widgets by the title the user sees), sends ``ModelChanged`` events, and keeps every text the
server sent back: the client-visible text a fuzz test checks for tracebacks and class names.
Like ``benchmarks/frame_client.py``, whose connection sequence it follows.
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import re
import time
import uuid

from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import websocket_connect

_TOKEN = re.compile(r'"token":\s*"([^"]+)"')
_UNESCAPE = re.compile(r"\\(.)")  # nbody_explorer.runtime.messages.escape_markdown puts a backslash before punctuation
_TAG = re.compile(r"<[^>]*>")
_TEXT_ATTRIBUTES = ("text", "message", "title", "label", "object")


def _readable(text) -> str:
    """What a reader sees of a pane's text: entities decoded, tags dropped, Markdown escapes removed."""
    if not isinstance(text, str):
        return ""
    return _UNESCAPE.sub(r"\1", html.unescape(_TAG.sub(" ", html.unescape(text))))


def wire_value(value):
    """``value`` as BokehJS serializes it: NaN and ±inf as ``{"type": "number", ...}``."""
    if isinstance(value, float) and not math.isfinite(value):
        text = "nan" if math.isnan(value) else ("+inf" if value > 0 else "-inf")
        return {"type": "number", "value": text}
    return value


def _references(value, out: list) -> None:
    if isinstance(value, dict):
        if "id" in value and isinstance(value["id"], str) and set(value) <= {"id", "type", "name", "attributes"}:
            out.append(value["id"])
        for item in value.values():
            _references(item, out)
    elif isinstance(value, list):
        for item in value:
            _references(item, out)


class HostileClient:
    """One session of the served app driven over its websocket (use inside an asyncio loop)."""

    def __init__(self, base_url: str, query: str = ""):
        self.base_url = base_url.rstrip("/")
        self.query = query
        self.models: dict[str, dict] = {}  # id -> {"name": Bokeh type, "attributes": {...}}
        self.received: list[str] = []  # every text message the server sent (headers, contents)
        self.replies: dict[str, dict] = {}  # our msgid -> the OK / ERROR reply's header + content
        # Texts a user reads: every changed ``text``/``message``/``title``/``label``, every
        # notification, every ERROR reply (unescaped: Markdown backslashes and HTML entities).
        self.texts: list[str] = []
        self.changes: list[tuple[str, str, object]] = []  # (model id, attr, new) of every ModelChanged received
        self.roots: list[str] = []  # the document's root model ids
        self._ws = None
        self._reader: asyncio.Task | None = None

    # ------------------------------------------------------------------ connection
    async def connect(self, *, timeout_s: float = 240.0) -> None:
        page = await AsyncHTTPClient().fetch(f"{self.base_url}/app{self.query}", request_timeout=timeout_s)
        self.received.append(page.body.decode("utf-8", "replace"))
        token = _TOKEN.search(page.body.decode()).group(1)
        url = self.base_url.replace("http://", "ws://") + "/app/ws"
        self._ws = await websocket_connect(url, subprotocols=["bokeh", token], max_message_size=64 << 20)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        # The server reads nothing before it has sent its ACK (it closes the socket otherwise).
        await self.wait_for(lambda: any('"ACK"' in text for text in self.received), timeout_s)
        pulled = await self.send("PULL-DOC-REQ", {})
        await self.wait_for(lambda: pulled in self.replies, timeout_s)
        await self.send("PATCH-DOC", {"events": [{"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": {
            "type": "event", "name": "document_ready", "values": {"type": "map"}}}]})

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            self._ws.close()

    @property
    def open(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def send(self, msgtype: str, content: dict) -> str:
        msgid = uuid.uuid4().hex
        for part in ({"msgid": msgid, "msgtype": msgtype}, {}, content):
            await self._ws.write_message(json.dumps(part))
        return msgid

    async def _read(self) -> None:
        while True:
            header = await self._ws.read_message()
            if header is None:
                return
            metadata = await self._ws.read_message()
            content = await self._ws.read_message()
            parsed = json.loads(header)
            for _ in range(parsed.get("num_buffers", 0)):
                await self._ws.read_message()  # buffer header
                await self._ws.read_message()  # buffer (binary frames: not text)
            for text in (header, metadata, content):
                if isinstance(text, str):
                    self.received.append(text)
            body = json.loads(content) if isinstance(content, str) else {}
            if parsed["msgtype"] == "PULL-DOC-REPLY":
                self.roots = [root["id"] for root in body.get("doc", {}).get("roots", []) if isinstance(root, dict)]
            self._collect(body)
            if "reqid" in parsed:
                self.replies[parsed["reqid"]] = {"msgtype": parsed["msgtype"], "content": body}
                if parsed["msgtype"] == "ERROR":
                    self.texts.append(json.dumps(body))

    def _collect(self, value) -> None:
        if isinstance(value, dict):
            if value.get("type") == "object" and "id" in value:
                known = self.models.setdefault(value["id"], {"name": value.get("name"), "attributes": {}})
                known["attributes"].update(value.get("attributes") or {})
                for attr in _TEXT_ATTRIBUTES:
                    if isinstance((value.get("attributes") or {}).get(attr), str):
                        self.texts.append(_readable(value["attributes"][attr]))
            if value.get("kind") == "ModelChanged" and isinstance(value.get("model"), dict):
                known = self.models.setdefault(value["model"]["id"], {"name": None, "attributes": {}})
                known["attributes"][value["attr"]] = value.get("new")
                self.changes.append((value["model"]["id"], value["attr"], value.get("new")))
                if value["attr"] in _TEXT_ATTRIBUTES and isinstance(value.get("new"), str):
                    self.texts.append(_readable(value["new"]))
            for item in value.values():
                self._collect(item)
        elif isinstance(value, list):
            for item in value:
                self._collect(item)

    # ------------------------------------------------------------------ reading the page
    async def wait_for(self, condition, timeout_s: float, *, poll_s: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            if not self.open:
                break
            await asyncio.sleep(poll_s)
        return condition()

    def live_ids(self) -> set[str]:
        """Ids of the models the document holds now: reachable from its roots (a model a rebuilt
        tab replaced stays in :attr:`models` but is no longer reachable)."""
        live, stack = set(), list(self.roots)
        while stack:
            model_id = stack.pop()
            if model_id in live or model_id not in self.models:
                continue
            live.add(model_id)
            refs: list = []
            _references(self.models[model_id]["attributes"], refs)
            stack.extend(refs)
        return live

    def find(self, *, name: str | None = None, **attributes) -> list[str]:
        """Ids of models of Bokeh type ``name`` whose attributes equal ``attributes``."""
        return [model_id for model_id, model in self.models.items()
                if (name is None or model["name"] == name)
                and all(model["attributes"].get(key) == value for key, value in attributes.items())]

    def attribute(self, model_id: str, attr: str):
        return self.models.get(model_id, {}).get("attributes", {}).get(attr)

    def shown_texts(self) -> list[str]:
        """The current text of every visible model that has one (readable, as in :attr:`texts`)."""
        out = []
        for model_id in self.live_ids():
            attributes = self.models[model_id]["attributes"]
            if attributes.get("visible", True) is not False and isinstance(attributes.get("text"), str):
                out.append(_readable(attributes["text"]))
        return out

    def texts_since(self, start: int) -> list[str]:
        """The readable texts (:attr:`texts`) from index ``start`` on."""
        return self.texts[start:]

    # ------------------------------------------------------------------ tampering
    async def change(self, model_id: str, attr: str, new) -> str:
        """Send one ``ModelChanged`` as a tampered page would; returns the message id (its
        OK or ERROR reply lands in :attr:`replies`)."""
        return await self.send("PATCH-DOC", {"events": [
            {"kind": "ModelChanged", "model": {"id": model_id}, "attr": attr, "new": wire_value(new)}]})

    async def change_raw(self, content_json: str) -> str:
        """Send a PATCH-DOC whose content is ``content_json`` verbatim (e.g. ``NaN`` or a
        400-digit number, which ``json.dumps`` of a Python value would not write)."""
        msgid = uuid.uuid4().hex
        for part in (json.dumps({"msgid": msgid, "msgtype": "PATCH-DOC"}), "{}", content_json):
            await self._ws.write_message(part)
        return msgid
