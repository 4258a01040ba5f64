"""The alert bridge's tests share this: a private bridge, Telegram test server and Alertmanager
started by the stack's supervisor on free ports, and Alertmanager-shaped webhook payloads."""

from __future__ import annotations

import itertools
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tbmon.alert_bridge.html import plain_text
from tbmon.alert_bridge.settings import DEMO_CRITICAL_CHAT_ID, DEMO_WARNING_CHAT_ID
from tbmon.ports import isolated_settings
from tbmon.settings import StackSettings
from tbmon.stack import render
from tbmon.stack.supervisor import Supervisor
from tbmon.standins.telegram import TestServerClient

CRITICAL_CHAT = DEMO_CRITICAL_CHAT_ID
WARNING_CHAT = DEMO_WARNING_CHAT_ID
_fingerprints = itertools.count(1)
#: Characters that change how text around them shows while showing nothing themselves: the
#: bidirectional overrides, embeddings, isolates and marks, zero-width spaces, the word joiner,
#: the byte order mark, the soft hyphen, an invisible operator, an interlinear annotation
#: anchor and a tag character.
DISGUISES = (
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c", "\u200b", "\u2060", "\ufeff", "\u00ad", "\u2062"]
    + ["\ufff9", "\U000e0041"]
)


@dataclass
class Rig:
    """A running bridge with its Telegram test server (and Alertmanager, when asked for)."""

    supervisor: Supervisor
    telegram: TestServerClient

    @property
    def settings(self) -> StackSettings:
        return self.supervisor.settings

    @property
    def url(self) -> str:
        return self.settings.url(self.settings.bridge_port)

    @property
    def token(self) -> str:
        return render.bridge_token_file(self.settings).read_text()

    def post(self, payload: Any, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """Call the webhook as Alertmanager does."""
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(
            self.url + "/webhook/alertmanager", json=payload, headers=headers, timeout=30, **kwargs
        )

    def post_until_accepted(self, payload: dict[str, Any], deadline: float) -> None:
        """What Alertmanager does: retry 5xx and connection errors until a 2xx."""
        while time.monotonic() < deadline:
            try:
                if self.post(payload).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the bridge never accepted {payload['alerts'][0]['labels']['id']}")

    def send_head(self, *lines: str, timeout: float = 10.0) -> tuple[int, str]:
        """Send a request's head (its request line and headers) and not one byte of its body;
        the status and the raw answer (head and body) the bridge gives without it (a socket
        timeout if it waits for the body instead)."""
        host, port = self.settings.bind_host, self.settings.bridge_port
        head = "\r\n".join([*lines, f"Host: {host}:{port}", "", ""])
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(head.encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += connection.recv(65536) or b"<closed>\r\n\r\n"
            length = re.search(rb"(?im)^content-length: *(\d+)", answer)
            expected = answer.index(b"\r\n\r\n") + 4 + (int(length[1]) if length else 0)
            while len(answer) < expected and (data := connection.recv(65536)):
                answer += data
        text = answer.decode()
        return int(text.split(" ", 2)[1]), text

    def messages(self, chat: str = CRITICAL_CHAT) -> list[dict[str, Any]]:
        return self.telegram.messages(chat)

    def bridge_rss_mib(self) -> float:
        """The bridge process's resident memory, from /proc."""
        return rss_mib(self.bridge_pid())

    def bridge_pid(self) -> int:
        status = next(s for s in self.supervisor.status(["alert-bridge"]))
        assert status.pid is not None
        return status.pid

    def kill_bridge(self) -> None:
        process = psutil.Process(self.bridge_pid())
        process.kill()
        process.wait(10)

    def restart_bridge(self) -> None:
        self.supervisor.up(["alert-bridge"])


def rss_mib(pid: int) -> float:
    """A process's resident memory (VmRSS in /proc/PID/status), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


@contextmanager
def bridge_rig(
    data_dir: Path,
    *,
    alertmanager: bool = False,
    env: dict[str, str] | None = None,
    stack: dict[str, Any] | None = None,
) -> Iterator[Rig]:
    """Start the Telegram test server and the bridge.

    ``env`` is the bridge's environment; ``{bridge}`` and ``{telegram}`` in a value become the
    bridge's and the test server's URLs. ``stack`` changes the stack's settings (Alertmanager's
    routing, say).
    """
    names = ["telegram-test", "alert-bridge"] + (["alertmanager"] if alertmanager else [])
    supervisor = Supervisor(isolated_settings(data_dir).model_copy(update=stack or {}))
    settings = supervisor.settings
    telegram = TestServerClient(settings.url(settings.telegram_test_port))
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
        patch.delenv("ALERT_BRIDGE_TOKEN", raising=False)
        try:
            supervisor.up(["telegram-test"])  # first: a TELEGRAM_BOT_TOKEN in env disables it
            urls = {
                "bridge": settings.url(settings.bridge_port),
                "telegram": settings.url(settings.telegram_test_port),
            }
            for name, value in (env or {}).items():
                patch.setenv(name, value.format(**urls))
            supervisor.up(names[1:])
            yield Rig(supervisor, telegram)
        finally:
            telegram.close()
            supervisor.down(names)


def alert(
    ident: str,
    *,
    name: str = "TestAlert",
    severity: str = "critical",
    status: str = "firing",
    fingerprint: str | None = None,
    starts_at: str = "2026-01-15T14:30:45Z",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One alert as Alertmanager puts it in a webhook; ``ident`` shows as the label id=..."""
    ends = datetime.now(UTC).isoformat() if status == "resolved" else "0001-01-01T00:00:00Z"
    return {
        "status": status,
        "labels": {
            "alertname": name,
            "severity": severity,
            "component": "trading",
            "id": ident,
            **(labels or {}),
        },
        "annotations": annotations
        or {
            "summary": f"summary of {ident}",
            "description": f"description of {ident}",
            "action": "do something",
        },
        "startsAt": starts_at,
        "endsAt": ends,
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
        "fingerprint": fingerprint or f"fp{next(_fingerprints):08d}",
    }


def notification(alerts: list[dict[str, Any]], group: str = "group") -> dict[str, Any]:
    """A version-4 webhook body for these alerts."""
    common = alerts[0]["labels"]
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{group}"}}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": "telegram",
        "groupLabels": {"alertname": common["alertname"]},
        "commonLabels": {"alertname": common["alertname"], "severity": common["severity"]},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": alerts,
    }


def idents(messages: list[dict[str, Any]]) -> list[str]:
    """The alert ids (label id=...) in these messages, in the order they appear (the Labels
    line puts a trader's labels first, whose values may hold anything, newlines included)."""
    return [
        match.group(1)
        for message in messages
        for match in re.finditer(r"(?:^Labels: |, )id=([A-Za-z0-9_-]+)", message["text"], re.M)
    ]


def sent_idents(request: dict[str, Any]) -> list[str]:
    """The alert ids in a sendMessage request the Telegram test server recorded."""
    return idents([{"text": plain_text(request["params"]["text"])}])
