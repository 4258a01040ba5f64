"""What the local stand-ins for internet services share: faults on a schedule, and the control API.

Tests and the demo reach Telegram's Bot API and an exchange through local servers that speak
their wire formats (``tbmon.standins.telegram``,
``tbmon.standins.exchange``). Both are steered the same way: under
``/_control``, ``GET /health``, ``POST /reset``, ``POST /faults`` (a fault model of the server's
own, with this module's schedule) and ``DELETE /faults``; :class:`ControlClient` is their client.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import httpx
from fastapi import APIRouter
from pydantic import BaseModel, Field


class Scheduled(BaseModel):
    """When an injected fault applies: for ``duration`` seconds from now, to ``count`` requests."""

    count: int | None = Field(default=None, gt=0, description="Matching requests affected.")
    duration: float | None = Field(default=None, gt=0, description="Seconds from now.")


FaultT = TypeVar("FaultT", bound=Scheduled)


@dataclass
class ActiveFault(Generic[FaultT]):
    """A fault as injected: its spec, when it began, and how many requests it has affected."""

    fault: FaultT
    started: float = field(default_factory=time.monotonic)
    used: int = 0

    def live(self, now: float) -> bool:
        """Whether the schedule still runs (the server matches the request itself)."""
        spec = self.fault
        if spec.duration is not None and now >= self.started + spec.duration:
            return False
        return spec.count is None or self.used < spec.count


class StandIn(Protocol[FaultT]):
    """A stand-in's state, as the control API needs it."""

    faults: list[ActiveFault[FaultT]]

    def reset(self) -> None: ...


def control_router(state: StandIn[FaultT], fault_model: type[FaultT]) -> APIRouter:
    """``/_control``'s common endpoints; the server adds its own to the router."""
    router = APIRouter(prefix="/_control", tags=["control"])

    @router.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @router.post("/reset")
    async def reset() -> dict[str, bool]:
        state.reset()
        return {"ok": True}

    async def add_fault(fault: Any) -> dict[str, int]:
        state.faults.append(ActiveFault(fault))
        return {"faults": len(state.faults)}

    # FastAPI validates the body against the annotation: the server's own fault model.
    add_fault.__annotations__ = {"fault": fault_model, "return": dict[str, int]}
    router.post("/faults")(add_fault)

    @router.delete("/faults")
    async def clear_faults() -> dict[str, int]:
        state.faults.clear()
        return {"faults": 0}

    return router


class ControlClient:
    """The control API from a test, a benchmark or the demo; a server's client adds its calls."""

    fault_model: ClassVar[type[Scheduled]]

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url + "/_control", timeout=10)

    def close(self) -> None:
        self._http.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self._json("POST", "/reset")

    def fault(self, **spec: Any) -> None:
        """Inject a fault (keyword arguments are the server's fault model's fields)."""
        self._json("POST", "/faults", json=self.fault_model(**spec).model_dump())

    def clear_faults(self) -> None:
        self._json("DELETE", "/faults")


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never says a word: a dependency that
    hangs, the case every timeout is for. Yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)
        for connection in held:
            connection.close()
