"""A frame-only dashboard client: speaks Bokeh's websocket protocol, presses Play, counts frames.

It does what a browser tab does for the Simulate tab, minus drawing: GET ``/app?query``
(the server makes the session and puts its token in the page), open ``/app/ws`` with that
token, pull the document, send ``document_ready`` (the app then builds its tabs), set the
Play toggle's ``active``, and from then on receive the orbit scene's binary frames
(``esm_event`` messages with one buffer, see ``app/components/orbit_scene.py``) and
acknowledge each one the way the page does (``drawn`` on the scene's model). Nothing is
decoded beyond the frame header, so the client's own CPU cost stays small and the server's
capacity shows (many Chromium pages on two cores measure the browsers instead).

Used by ``benchmarks/load_test_frames.py``; ``python benchmarks/frame_client.py URL`` runs
one client for a few seconds and prints what it counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import struct
import time
import uuid
from dataclasses import dataclass, field

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

_TOKEN = re.compile(r'"token":\s*"([^"]+)"')
_PLAY_LABEL = "▶ Play"
#: The headings of the message a session past a cap gets (app/dashboard.py ``_refusal_text``).
REFUSED_TEXTS = ("The dashboard is full right now", "Too many dashboard tabs")


class SessionRefused(Exception):
    """The server answered with its "full" page instead of a dashboard."""


@dataclass
class ClientResult:
    """What one client saw: frame arrival times (``time.perf_counter`` s) and sizes."""

    query: str
    arrivals: list[float] = field(default_factory=list)
    frame_bytes: int = 0
    play_sent_at: float | None = None
    error: str | None = None
    messages: int = 0
    connect_started_at: float | None = None  # GET of the page sent
    page_loaded_at: float | None = None  # page (with the session token) received
    ready_at: float | None = None  # the Simulate tab built: Play and the scene are on the page
    session_id: str | None = None  # the Bokeh session id of the page (from its token)
    cookie: str = ""  # cookies the page set (a load balancer's sticky-session cookie), sent back

    def frames_per_s(self, skip_s: float = 1.0) -> float:
        """Frames per second after the first ``skip_s`` seconds of playing."""
        if self.play_sent_at is None:
            return 0.0
        kept = [t for t in self.arrivals if t >= self.play_sent_at + skip_s]
        if len(kept) < 2:
            return 0.0
        return (len(kept) - 1) / (kept[-1] - kept[0])


def _walk(value, found: dict) -> None:
    """Collect the Play toggle's id and the orbit scene's data-model id from doc JSON."""
    if isinstance(value, dict):
        attributes = value.get("attributes") or {}
        if value.get("name") == "Toggle" and attributes.get("label") == _PLAY_LABEL:
            found["play"] = value["id"]
        if attributes.get("class_name") == "OrbitScene" and isinstance(attributes.get("data"), dict):
            found["scene_data"] = attributes["data"]["id"]
        for item in value.values():
            _walk(item, found)
    elif isinstance(value, list):
        for item in value:
            _walk(item, found)


def _session_id(token: str) -> str | None:
    """The session id inside a Bokeh session token (base64url JSON payload; None if unreadable)."""
    import base64

    try:
        payload = token.split(".")[0]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims.get("session_id")
    except (ValueError, AttributeError):
        return None


class FrameClient:
    """One session: ``await client.run(duration_s)``; results in ``client.result``."""

    def __init__(self, base_url: str, query: str = "", *, ack: bool = True):
        self.base_url = base_url.rstrip("/")
        self.result = ClientResult(query=query)
        self.ack = ack
        self._ws = None
        self._ids: dict = {}

    async def _send(self, msgtype: str, content: dict) -> None:
        header = {"msgid": uuid.uuid4().hex, "msgtype": msgtype}
        for part in (header, {}, content):
            await self._ws.write_message(json.dumps(part))

    async def _patch(self, events: list) -> None:
        await self._send("PATCH-DOC", {"events": events})

    async def _receive(self):
        """One Bokeh message: ``(header, content, buffers)``; None when the socket closed."""
        header = await self._ws.read_message()
        if header is None:
            return None
        header = json.loads(header)
        await self._ws.read_message()  # metadata
        content = await self._ws.read_message()
        buffers = []
        for _ in range(header.get("num_buffers", 0)):
            await self._ws.read_message()  # buffer header {"id": ...}
            buffers.append(await self._ws.read_message())
        self.result.messages += 1
        return header, content, buffers

    async def run(self, duration_s: float, *, connect_timeout_s: float = 240.0) -> ClientResult:
        try:
            await asyncio.wait_for(self._connect(), connect_timeout_s)
            await self._play_for(duration_s)
        except Exception as error:  # noqa: BLE001 - reported per client in the results
            self.result.error = f"{type(error).__name__}: {error}"
        finally:
            if self._ws is not None:
                self._ws.close()
        return self.result

    async def _connect(self) -> None:
        self.result.connect_started_at = time.perf_counter()
        headers = {"Cookie": self.result.cookie} if self.result.cookie else None  # a cookie set beforehand
        page = await AsyncHTTPClient().fetch(HTTPRequest(f"{self.base_url}/app{self.result.query}", headers=headers,
                                                         request_timeout=240))
        self.result.page_loaded_at = time.perf_counter()
        self.result.cookie = "; ".join(c.split(";", 1)[0] for c in page.headers.get_list("Set-Cookie")) or self.result.cookie
        token = _TOKEN.search(page.body.decode()).group(1)
        self.result.session_id = _session_id(token)
        ws_url = self.base_url.replace("http://", "ws://") + "/app/ws"
        request = HTTPRequest(ws_url, headers={"Cookie": self.result.cookie} if self.result.cookie else None)
        self._ws = await websocket_connect(request, subprotocols=["bokeh", token], max_message_size=64 << 20)
        self._ws.stream.set_nodelay(True)  # as browsers do: a message's frames are not held by Nagle
        await self._receive()  # ACK
        await self._send("PULL-DOC-REQ", {})
        while "play" not in self._ids or "scene_data" not in self._ids:
            message = await self._receive()
            if message is None:
                raise ConnectionError("socket closed before the Simulate tab was built")
            header, content, _ = message
            if header["msgtype"] == "PULL-DOC-REPLY":
                _walk(json.loads(content), self._ids)
                await self._patch([{"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": {
                    "type": "event", "name": "document_ready", "values": {"type": "map"}}}])
            elif header["msgtype"] == "PATCH-DOC":
                _walk(json.loads(content), self._ids)
            if any(text in content for text in REFUSED_TEXTS):
                raise SessionRefused("the server is full")
        self.result.ready_at = time.perf_counter()

    async def _play_for(self, duration_s: float) -> None:
        await self._patch([{"kind": "ModelChanged", "model": {"id": self._ids["play"]}, "attr": "active", "new": True}])
        self.result.play_sent_at = time.perf_counter()
        end = self.result.play_sent_at + duration_s
        while True:
            remaining = end - time.perf_counter()
            if remaining <= 0:
                break
            try:
                message = await asyncio.wait_for(self._receive(), remaining)
            except asyncio.TimeoutError:
                break
            if message is None:
                raise ConnectionError("socket closed while playing")
            header, content, buffers = message
            if header["msgtype"] != "PATCH-DOC" or not buffers or "esm_event" not in content:
                continue
            frame = buffers[0]
            self.result.arrivals.append(time.perf_counter())
            self.result.frame_bytes += len(frame)
            if self.ack:
                index = int(struct.unpack_from("<f", frame, 16)[0])  # header word 4: frame index
                run_id = int(struct.unpack_from("<f", frame, 12)[0])
                await self._patch([{"kind": "ModelChanged", "model": {"id": self._ids["scene_data"]},
                                    "attr": "drawn", "new": [run_id, index]}])
        await self._patch([{"kind": "ModelChanged", "model": {"id": self._ids["play"]}, "attr": "active", "new": False}])


async def run_clients(base_url: str, queries: list[str], duration_s: float, *, stagger_s: float = 0.2,
                      connect_timeout_s: float = 600.0) -> list[ClientResult]:
    """Connect one client per query (``stagger_s`` apart), then press Play in all of them at
    once and let each play ``duration_s`` (so that every session plays during the window)."""
    clients = [FrameClient(base_url, query) for query in queries]

    async def connect(index: int, client: FrameClient) -> bool:
        await asyncio.sleep(index * stagger_s)
        try:
            await asyncio.wait_for(client._connect(), connect_timeout_s)
            return True
        except Exception as error:  # noqa: BLE001 - reported per client in the results
            client.result.error = f"connect: {type(error).__name__}: {error}"
            return False

    async def play(client: FrameClient) -> None:
        try:
            await client._play_for(duration_s)
        except Exception as error:  # noqa: BLE001
            client.result.error = f"play: {type(error).__name__}: {error}"

    connected = await asyncio.gather(*(connect(i, c) for i, c in enumerate(clients)))
    await asyncio.gather(*(play(c) for c, ok in zip(clients, connected) if ok))
    for client in clients:
        if client._ws is not None:
            client._ws.close()
    return [client.result for client in clients]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="e.g. http://127.0.0.1:5006")
    parser.add_argument("--query", default="?preset=plummer&n=200&steps=1")
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args(argv)
    [result] = asyncio.run(run_clients(args.base_url, [args.query], args.duration))
    print(json.dumps({"frames": len(result.arrivals), "frames_per_s": round(result.frames_per_s(), 2),
                      "bytes": result.frame_bytes, "messages": result.messages, "error": result.error}))
    return 0 if result.error is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
