"""Local stand-ins that speak the wire format of services these tests cannot run.

- Telegram's Bot API (internet only): ``getMe`` as Telegram answers it, for valid and revoked
  tokens.
- A server that accepts connections and never answers, the worst way a dependency fails.
- Grafana's HTTP API: Grafana is AGPL and in no registry our machines reach, so it runs only in
  the Compose stack. This speaks the endpoints `tbmon doctor` and `tbmon backup` call (health,
  datasource health, search, dashboard by uid, datasources) with Grafana's JSON shapes and its
  basic-auth refusal, serving the dashboards this repository provisions.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tbmon.stack import dashboards

BOT_TOKEN = "1234567890:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT_USERNAME = "tbmon_test_bot"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on answers, not on access logs."""

    def reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Telegram(_Handler):
    def do_GET(self) -> None:
        match = re.fullmatch(r"/bot(?P<token>[^/]+)/getMe", self.path)
        if match is None:
            self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        elif match["token"] == BOT_TOKEN:
            result = {
                "id": 1234567890,
                "is_bot": True,
                "first_name": "tbmon",
                "username": BOT_USERNAME,
            }
            self.reply(200, {"ok": True, "result": result})
        else:
            self.reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})


class _Grafana(_Handler):
    server: _GrafanaServer

    def do_GET(self) -> None:
        if self.path == "/api/health":
            self.reply(200, {"database": "ok", "version": "13.2.1"})
            return
        expected = base64.b64encode(f"admin:{self.server.password}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self.reply(401, {"message": "invalid username or password"})
            return
        boards = {d.uid: d for d in (build() for build in dashboards.DASHBOARDS)}
        if match := re.fullmatch(r"/api/datasources/uid/([\w-]+)/health", self.path):
            uid = match[1]
            if uid in self.server.failing:
                self.reply(400, {"status": "ERROR", "message": f"{uid}: connection refused"})
            else:
                self.reply(200, {"status": "OK", "message": "Data source is working"})
        elif self.path.startswith("/api/search"):
            hits = [
                {"uid": uid, "title": d.title, "type": "dash-db", "folderTitle": "Trading Bot"}
                for uid, d in boards.items()
            ]
            self.reply(200, hits)
        elif match := re.fullmatch(r"/api/dashboards/uid/([\w-]+)", self.path):
            board = boards[match[1]]
            self.reply(200, {"dashboard": board.to_json(), "meta": {"folderUid": "tbmon"}})
        elif self.path == "/api/datasources":
            self.reply(200, [{"uid": "prometheus", "type": "prometheus", "name": "Prometheus"}])
        else:
            self.reply(404, {"message": "Not found"})


class _GrafanaServer(ThreadingHTTPServer):
    password = ""
    failing: frozenset[str] = frozenset()


@contextmanager
def _serve(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def telegram() -> Iterator[str]:
    """A Bot API base URL that knows BOT_TOKEN and refuses any other token."""
    with _serve(ThreadingHTTPServer(("127.0.0.1", 0), _Telegram)) as url:
        yield url


@contextmanager
def grafana(password: str, failing: frozenset[str] = frozenset()) -> Iterator[str]:
    """A Grafana API for user admin with ``password``; the ``failing`` datasources are down."""
    server = _GrafanaServer(("127.0.0.1", 0), _Grafana)
    server.password, server.failing = password, failing
    with _serve(server) as url:
        yield url


@contextmanager
def hanging() -> Iterator[str]:
    """A URL whose server accepts the connection (the kernel does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
