"""The bridge's front door: who may send what, decided before a byte of the body is read.

A pure ASGI layer in front of FastAPI (``app.add_middleware(Gate, doors=..., budget=...)``).
For each path with a :class:`Door` it, in this order:

1. admits the request on its headers alone (the bearer token, Telegram's secret header), or
   refuses it (401) without reading any of its body;
2. refuses a declared ``Content-Length`` over the door's limit at once (413);
3. reads the body itself, counting bytes as they stream in (``Content-Length`` or chunked), and
   refuses (413) as soon as the count passes the limit, without reading the rest;
4. holds the bytes only within a :class:`ByteBudget` shared by every request in flight, until
   the app has answered (503 with ``Retry-After`` beyond it, which Alertmanager retries);
5. asks the door whether the body is more work than one request may cost (the webhook's count of
   alerts: formatting them runs on the event loop, about 0.1 ms each, so a 30,000-alert webhook
   held every other sender for seconds), and refuses it (413) before it is parsed;
6. hands the app the body it read, as one message.

A refusal of a body that may be large (chunked, or declared over 64 KiB) is answered with
``Connection: close``, so the rest of it is never read, not even to be thrown away; a smaller
one is already in the server's read-ahead buffer, so the connection stays open for the next
request. Paths without a door go to the app untouched.

Measured (docs/performance.md): 40 bodies of 400 MiB without the token, plain and chunked, 8 at
a time, are answered 401 with the bridge's memory at 81 MiB throughout (before this layer one
such body was read and parsed, and took the bridge from 80 to 880 MiB for good). A refusal
costs 40 us of CPU whatever the body (456 us for a small one before, 6,949 us for 1 MiB); an
admitted webhook pays about 60-90 us for the layer, less than the http middleware it replaced
(about 130 us on every request).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: What the server reads ahead of the app (uvicorn's high-water mark): a refused body this small
#: costs nothing more to skip, so its connection stays open.
_READ_AHEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Refusal:
    """An answer the gate gives instead of the app: a status and a ``detail`` as FastAPI's."""

    status: int
    reason: str  # for the door's counter: unauthorized, too_large, busy, ...
    detail: str
    headers: tuple[tuple[str, str], ...] = ()

    def response(self, *, close: bool) -> tuple[Message, Message]:
        """The answer's two ASGI messages; ``close``: end the connection after it."""
        body = json.dumps({"detail": self.detail}, separators=(",", ":")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((name.encode("latin-1"), value.encode("latin-1")) for name, value in self.headers),
        ]
        if close:
            headers.append((b"connection", b"close"))
        start: Message = {"type": "http.response.start", "status": self.status, "headers": headers}
        return start, {"type": "http.response.body", "body": body}


#: Decides on the headers alone: None admits the request.
Admit = Callable[[Headers], Refusal | None]


def bearer(token: str, detail: str) -> Admit:
    """Admit requests with ``Authorization: Bearer <token>`` (compared in constant time)."""
    expected = token.encode()

    def admit(headers: Headers) -> Refusal | None:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return None
        return Refusal(401, "unauthorized", detail, (("WWW-Authenticate", "Bearer"),))

    return admit


def header_secret(name: str, secret: str, detail: str) -> Admit:
    """Admit requests whose header ``name`` holds ``secret`` (compared in constant time)."""
    expected = secret.encode()

    def admit(headers: Headers) -> Refusal | None:
        if hmac.compare_digest(headers.get(name, "").encode(), expected):
            return None
        return Refusal(401, "unauthorized", detail)

    return admit


@dataclass(frozen=True)
class Door:
    """What a path asks of a request before the app sees it."""

    admit: Admit
    #: Body bytes the path accepts; 0 for a path that takes no body (its body is never read).
    limit: int
    #: Told each refusal's reason (a metric's counter, say).
    refused: Callable[[str], None] = field(default=lambda reason: None)
    #: Looks at the body read (cheaply: before it is parsed); a Refusal refuses it.
    inspect: Callable[[bytes], Refusal | None] = field(default=lambda body: None)


class ByteBudget:
    """Bytes of request bodies held at once, over all requests; what it refuses waits for none.

    The event loop is the only caller, so plain arithmetic is atomic here.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0

    def lease(self) -> Lease:
        return Lease(self)


class Lease:
    """One request's share of a :class:`ByteBudget`, grown as its body arrives."""

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.size = 0

    def grow_to(self, size: int) -> bool:
        """Hold ``size`` bytes in all (no change if already as many); False: over the budget."""
        extra = size - self.size
        if extra <= 0:
            return True
        if self._budget.held + extra > self._budget.capacity:
            return False
        self._budget.held += extra
        self.size = size
        return True

    def release(self) -> None:
        self._budget.held -= self.size
        self.size = 0


class Gate:
    """Pure ASGI middleware: each request to a path of ``doors`` is admitted, limited and read
    here, within ``budget``, before ``app`` sees it."""

    def __init__(self, app: ASGIApp, doors: Mapping[str, Door], budget: ByteBudget) -> None:
        self.app = app
        self._doors = doors
        self._budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = self._doors.get(scope["path"]) if scope["type"] == "http" else None
        if door is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = door.admit(headers)
        if refusal is None and door.limit:
            refusal = _too_large(headers, door.limit)
        if refusal is not None:
            await _refuse(refusal, door, headers, send)
            return
        if not door.limit:
            await self.app(scope, receive, send)
            return
        lease = self._budget.lease()
        try:
            body = await _read(receive, door.limit, headers, lease)
            if isinstance(body, Refusal):
                await _refuse(body, door, headers, send)
                return
            refusal = door.inspect(body)
            if refusal is not None:
                await _refuse(refusal, door, headers, send)
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            lease.release()


async def _read(receive: Receive, limit: int, headers: Headers, lease: Lease) -> bytes | Refusal:
    """The whole body, or why not, holding its bytes in ``lease`` (the declared length first)."""
    if not lease.grow_to(_declared(headers)):
        return _busy()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # The client left: nobody to answer; the app would see the same disconnect.
            return _gone()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return _over(limit)
        if not lease.grow_to(size):
            return _busy()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _declared(headers: Headers) -> int:
    """The body's declared length (0 when chunked or absent)."""
    declared = headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0


def _too_large(headers: Headers, limit: int) -> Refusal | None:
    return _over(limit) if _declared(headers) > limit else None


def _over(limit: int) -> Refusal:
    return Refusal(413, "too_large", f"body over {limit} bytes; lower max_alerts")


def _busy() -> Refusal:
    return Refusal(
        503,
        "busy",
        "the bridge holds as many request bodies as it may at once; retry shortly",
        (("Retry-After", "1"),),
    )


def _gone() -> Refusal:
    return Refusal(400, "disconnected", "the client closed the connection before the body ended")


async def _refuse(refusal: Refusal, door: Door, headers: Headers, send: Send) -> None:
    door.refused(refusal.reason)
    small = "transfer-encoding" not in headers and _declared(headers) <= _READ_AHEAD_BYTES
    start, body = refusal.response(close=not small)
    await send(start)
    await send(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, as one message; after it, the connection's own messages."""
    pending = [body]

    async def replay() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replay
