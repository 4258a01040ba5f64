"""A local Telegram Bot API server for tests and the demo (``tbmon bridge telegram-test-server``).

It speaks the Bot API's wire format (``/bot<token>/<method>``, ``{"ok": true, "result": ...}``,
``{"ok": false, "error_code": ..., "description": ..., "parameters": {...}}``) for the methods
the bridge uses, and checks what Telegram checks: the token, the chat, HTML entities
("can't parse entities"), the 4096-character limit, button data, reply targets, and the flood
limits (a message that breaks them gets a 429 and is counted as a violation).

A control API under ``/_control`` lets tests inject faults on a schedule (429 with retry_after,
500, HTML 502/503/504 pages, timeouts, chat migrations), kick the bot from a chat, press buttons,
send commands, and read back every request and message. State lives in memory; one server is one
fresh Telegram.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from tbmon.alert_bridge.html import MESSAGE_LIMIT, EntityParseError, parse, utf16_length
from tbmon.alert_bridge.settings import (
    DEMO_BOT_TOKEN,
    DEMO_CRITICAL_CHAT_ID,
    DEMO_OPERATOR_ID,
    DEMO_WARNING_CHAT_ID,
)
from tbmon.standins import ActiveFault, ControlClient, Scheduled, control_router

BOT_ID = int(DEMO_BOT_TOKEN.split(":", 1)[0])
BOT_USER = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "tbmon test bot",
    "username": "tbmon_test_bot",
}
_JSON_FIELDS = ("reply_markup", "reply_parameters", "link_preview_options", "allowed_updates")
_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} "
    "{reason}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
)
_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}

FaultKind = Literal["429", "500", "502", "503", "504", "timeout"]


class BotApiError(Exception):
    """An ``ok: false`` answer."""

    def __init__(self, code: int, description: str, **parameters: Any) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


class Fault(Scheduled):
    """Injected failures: ``kinds`` in turn, while the schedule lasts."""

    kinds: list[FaultKind] = Field(min_length=1)
    methods: list[str] = Field(default_factory=lambda: ["sendMessage"])
    chat_id: str | None = None
    retry_after: int = Field(default=3, ge=1)
    delay: float = Field(default=15.0, ge=0, description="How long a timeout holds the request.")
    deliver: bool = Field(default=False, description="A timeout still delivers the message.")


class ChatSpec(BaseModel):
    id: str
    type: Literal["private", "group", "supergroup", "channel"] = "supergroup"
    title: str = "test chat"
    topics: list[int] = Field(default_factory=list, description="Forum topic (thread) ids.")


class Limits(BaseModel):
    """Telegram's flood limits, enforced on sendMessage when ``enabled``."""

    enabled: bool = True
    chat_interval: float = Field(default=1.0, ge=0)
    group_per_minute: int = Field(default=20, gt=0)
    global_per_second: int = Field(default=30, gt=0)
    #: Clock slack allowed between the sender's spacing and ours.
    tolerance: float = Field(default=0.05, ge=0)


class Press(BaseModel):
    chat_id: str
    message_id: int
    data: str
    user_id: int = DEMO_OPERATOR_ID


class Command(BaseModel):
    chat_id: str
    text: str
    user_id: int = DEMO_OPERATOR_ID


@dataclass
class _Chat:
    id: str
    type: str
    title: str
    topics: set[int] = field(default_factory=set)
    migrated_to: str | None = None
    #: The bot was removed from the chat (or, for a private chat, blocked by the user).
    kicked: bool = False
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_message_id: int = 1
    sent: deque[float] = field(default_factory=deque)

    def as_api(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": int(self.id), "type": self.type}
        if self.type == "private":
            chat["first_name"] = self.title
        else:
            chat["title"] = self.title
        return chat


def _user(user_id: int) -> dict[str, Any]:
    name = "demo_operator" if user_id == DEMO_OPERATOR_ID else f"user{user_id}"
    return {"id": user_id, "is_bot": False, "first_name": name, "username": name}


class TelegramState:
    """One fake Telegram: chats, messages, updates, faults and the record of every request."""

    def __init__(self, token: str, printer: Callable[[str], None] | None = None) -> None:
        self.token = token
        self.printer = printer
        self.limits = Limits()
        self.reset()

    def reset(self) -> None:
        self.chats: dict[str, _Chat] = {}
        for chat_id, title in ((DEMO_CRITICAL_CHAT_ID, "critical"), (DEMO_WARNING_CHAT_ID, "warn")):
            self.add_chat(ChatSpec(id=chat_id, title=f"tbmon {title} alerts"))
        self.add_chat(ChatSpec(id=str(DEMO_OPERATOR_ID), type="private", title="demo_operator"))
        self.requests: list[dict[str, Any]] = []
        self.faults: list[ActiveFault[Fault]] = []
        self.violations = 0
        self.sent_times: deque[float] = deque()
        self.updates: list[dict[str, Any]] = []
        self.update_ids = itertools.count(1)
        self.new_update = asyncio.Event()
        self.poller = 0
        self.callbacks: dict[str, dict[str, Any]] = {}
        self.webhook: dict[str, Any] | None = None

    def add_chat(self, spec: ChatSpec) -> None:
        self.chats[spec.id] = _Chat(spec.id, spec.type, spec.title, set(spec.topics))

    # -- faults and limits ----------------------------------------------------------------------

    def fault_for(self, method: str, chat_id: str | None) -> tuple[Fault, FaultKind] | None:
        now = time.monotonic()
        for active in self.faults:
            spec = active.fault
            if not active.live(now) or method not in spec.methods:
                continue
            if spec.chat_id is None or spec.chat_id == chat_id:
                kind = spec.kinds[active.used % len(spec.kinds)]
                active.used += 1
                return spec, kind
        return None

    def check_limits(self, chat: _Chat) -> None:
        """Raise 429 for a message that breaks the flood limits (and count the violation)."""
        limits = self.limits
        if not limits.enabled:
            return
        now = time.monotonic()
        slack = limits.tolerance
        while chat.sent and chat.sent[0] <= now - 60 + slack:
            chat.sent.popleft()
        while self.sent_times and self.sent_times[0] <= now - 1 + slack:
            self.sent_times.popleft()
        wait = 0.0
        if chat.sent and now - chat.sent[-1] < limits.chat_interval - slack:
            wait = max(wait, chat.sent[-1] + limits.chat_interval - now)
        if chat.type != "private" and len(chat.sent) >= limits.group_per_minute:
            wait = max(wait, chat.sent[0] + 60 - now)
        if len(self.sent_times) >= limits.global_per_second:
            wait = max(wait, self.sent_times[0] + 1 - now)
        if wait > 0:
            self.violations += 1
            retry_after = max(1, int(wait + 0.999))
            raise BotApiError(
                429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
            )
        chat.sent.append(now)
        self.sent_times.append(now)

    # -- chats and messages ---------------------------------------------------------------------

    def chat(self, chat_id: Any) -> _Chat:
        if chat_id in (None, ""):
            raise BotApiError(400, "Bad Request: chat_id is empty")
        chat = self.chats.get(str(chat_id))
        if chat is None:
            raise BotApiError(400, "Bad Request: chat not found")
        if chat.migrated_to is not None:
            raise BotApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=int(chat.migrated_to),
            )
        if chat.kicked:
            if chat.type == "private":
                raise BotApiError(403, "Forbidden: bot was blocked by the user")
            raise BotApiError(403, f"Forbidden: bot was kicked from the {chat.type} chat")
        return chat

    def migrate(self, old: str, new: str) -> None:
        chat = self.chats[old]
        chat.migrated_to = new
        self.chats[new] = _Chat(new, "supergroup", chat.title)

    def push_update(self, update: dict[str, Any]) -> None:
        update["update_id"] = next(self.update_ids)
        self.updates.append(update)
        self.new_update.set()

    def message_for_api(self, chat: _Chat, stored: dict[str, Any]) -> dict[str, Any]:
        message = {k: v for k, v in stored.items() if not k.startswith("_")}
        message["chat"] = chat.as_api()
        return message


def _text_and_entities(text: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    if parse_mode in (None, ""):
        plain, found = text, []
    elif str(parse_mode).upper() == "HTML":
        try:
            parsed = parse(text)
        except EntityParseError as error:
            raise BotApiError(400, f"Bad Request: can't parse entities: {error}") from None
        plain, found = parsed.text, parsed.entities
    else:
        raise BotApiError(400, "Bad Request: unsupported parse_mode (the test server speaks HTML)")
    stripped = plain.strip()
    if not stripped:
        raise BotApiError(400, "Bad Request: message text is empty")
    if utf16_length(stripped) > MESSAGE_LIMIT:
        raise BotApiError(400, "Bad Request: message is too long")
    entities = []
    for tag, start, end, url in found:
        entity: dict[str, Any] = {
            "type": _ENTITY_TYPES[tag],
            "offset": utf16_length(plain[:start]),
            "length": utf16_length(plain[start:end]),
        }
        if tag == "a":
            entity["url"] = url
        entities.append(entity)
    return plain, entities


def _check_keyboard(markup: Any) -> None:
    if markup is None:
        return
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list):
        raise BotApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    for row in rows:
        for button in row:
            if not str(button.get("text", "")):
                raise BotApiError(
                    400, "Bad Request: text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise BotApiError(400, "Bad Request: BUTTON_DATA_INVALID")


class BotApi:
    """The Bot API methods, over a :class:`TelegramState`."""

    def __init__(self, state: TelegramState) -> None:
        self.state = state

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            raise BotApiError(404, "Not Found")
        return await handler(params)

    async def _getMe(self, params: dict[str, Any]) -> Any:  # noqa: N802
        return {**BOT_USER, "can_join_groups": True, "can_read_all_group_messages": False}

    async def _sendMessage(self, params: dict[str, Any]) -> Any:  # noqa: N802
        state = self.state
        chat = state.chat(params.get("chat_id"))
        text = params.get("text")
        if text is None or str(text) == "":
            raise BotApiError(400, "Bad Request: message text is empty")
        plain, entities = _text_and_entities(str(text), params.get("parse_mode"))
        markup = params.get("reply_markup")
        _check_keyboard(markup)
        thread = params.get("message_thread_id")
        if thread is not None and int(thread) not in chat.topics:
            raise BotApiError(400, "Bad Request: message thread not found")
        reply = params.get("reply_parameters") or {}
        reply_to = reply.get("message_id", params.get("reply_to_message_id"))
        if reply_to is not None and int(reply_to) not in chat.messages:
            if not reply.get(
                "allow_sending_without_reply", params.get("allow_sending_without_reply")
            ):
                raise BotApiError(400, "Bad Request: message to be replied not found")
            reply_to = None
        state.check_limits(chat)
        message: dict[str, Any] = {
            "message_id": chat.next_message_id,
            "from": BOT_USER,
            "date": int(time.time()),
            "text": plain,
        }
        if entities:
            message["entities"] = entities
        if markup:
            message["reply_markup"] = markup
        if thread is not None:
            message["message_thread_id"] = int(thread)
        if reply_to is not None:
            message["reply_to_message"] = {"message_id": int(reply_to), "chat": chat.as_api()}
        message["_html"] = text if params.get("parse_mode") else None
        message["_silent"] = bool(params.get("disable_notification"))
        message["_received"] = time.time()
        message["_edits"] = []
        chat.messages[chat.next_message_id] = message
        chat.next_message_id += 1
        if state.printer is not None:
            state.printer(printable(f"{chat.id} ({chat.title})", public(message)))
        return state.message_for_api(chat, message)

    async def _editMessageText(self, params: dict[str, Any]) -> Any:  # noqa: N802
        state = self.state
        chat = state.chat(params.get("chat_id"))
        message = chat.messages.get(int(params.get("message_id") or 0))
        if message is None:
            raise BotApiError(400, "Bad Request: message to edit not found")
        plain, entities = _text_and_entities(str(params.get("text", "")), params.get("parse_mode"))
        markup = params.get("reply_markup")
        _check_keyboard(markup)
        if plain == message["text"] and markup == message.get("reply_markup"):
            raise BotApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        message["_edits"].append(message["text"])
        message.update(text=plain, entities=entities, edit_date=int(time.time()))
        message["_html"] = params.get("text")
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        return state.message_for_api(chat, message)

    async def _answerCallbackQuery(self, params: dict[str, Any]) -> Any:  # noqa: N802
        query = self.state.callbacks.get(str(params.get("callback_query_id")))
        if query is None or query["answered"]:
            raise BotApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        answer = str(params.get("text") or "")
        if len(answer) > 200:
            raise BotApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        query.update(answered=True, text=answer, show_alert=bool(params.get("show_alert")))
        return True

    async def _getUpdates(self, params: dict[str, Any]) -> Any:  # noqa: N802
        state = self.state
        if state.webhook is not None:
            raise BotApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        if offset:
            state.updates = [u for u in state.updates if u["update_id"] >= offset]
        state.poller += 1
        me = state.poller
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while not state.updates and time.monotonic() < deadline:
            state.new_update.clear()
            try:
                await asyncio.wait_for(state.new_update.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
            if state.poller != me:
                raise BotApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one "
                    "bot instance is running",
                )
        limit = int(params.get("limit") or 100)
        return state.updates[:limit]

    async def _setWebhook(self, params: dict[str, Any]) -> Any:  # noqa: N802
        url = str(params.get("url") or "")
        self.state.webhook = {"url": url, "secret": params.get("secret_token")} if url else None
        if url:
            asyncio.get_running_loop().create_task(_deliver_to_webhook(self.state))
        return True

    async def _deleteWebhook(self, params: dict[str, Any]) -> Any:  # noqa: N802
        self.state.webhook = None
        return True

    async def _getWebhookInfo(self, params: dict[str, Any]) -> Any:  # noqa: N802
        webhook = self.state.webhook or {}
        return {"url": webhook.get("url", ""), "pending_update_count": len(self.state.updates)}


async def _deliver_to_webhook(state: TelegramState) -> None:
    """Push updates to the webhook as Telegram does, retrying until it answers 2xx."""
    async with httpx.AsyncClient(timeout=10) as client:
        while state.webhook is not None:
            if not state.updates:
                state.new_update.clear()
                await state.new_update.wait()
                continue
            webhook = state.webhook
            headers = {"X-Telegram-Bot-Api-Secret-Token": webhook["secret"] or ""}
            try:
                response = await client.post(webhook["url"], json=state.updates[0], headers=headers)
                delivered = response.is_success
            except httpx.HTTPError:
                delivered = False
            if delivered:
                state.updates.pop(0)
            else:
                await asyncio.sleep(1)


def public(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message as the control API shows it (``_silent`` becomes ``silent``...)."""
    return {key.lstrip("_"): value for key, value in message.items()}


def printable(chat: str, message: dict[str, Any]) -> str:
    """A message (as the control API shows it) for a terminal, headed by ``chat``."""
    notes = [f"chat {chat}", f"message {message['message_id']}"]
    if "reply_to_message" in message:
        notes.append(f"reply to {message['reply_to_message']['message_id']}")
    if message["silent"]:
        notes.append("silent")
    buttons = [
        f"[{button['text']}]"
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
        for button in row
    ]
    lines = [f"── Telegram test server: {' · '.join(notes)} ──", message["text"]]
    if buttons:
        lines.append(" ".join(buttons))
    return "\n".join(lines) + "\n"


def _fault_response(kind: FaultKind, fault: Fault) -> Response:
    if kind == "429":
        return _error(
            BotApiError(
                429,
                f"Too Many Requests: retry after {fault.retry_after}",
                retry_after=fault.retry_after,
            )
        )
    if kind == "500":
        return _error(BotApiError(500, "Internal Server Error"))
    code = 504 if kind == "timeout" else int(kind)
    return HTMLResponse(_GATEWAY_PAGE.format(code=code, reason=_REASONS[code]), status_code=code)


def _error(error: BotApiError) -> JSONResponse:
    body: dict[str, Any] = {
        "ok": False,
        "error_code": error.code,
        "description": error.description,
    }
    if error.parameters:
        body["parameters"] = error.parameters
    return JSONResponse(body, status_code=error.code)


async def _params(request: Request) -> dict[str, Any]:
    """Parameters as Telegram takes them: query string, form or JSON body."""
    params: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if "application/json" in content_type:
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    elif "form" in content_type:
        params.update(dict(await request.form()))
    for name in _JSON_FIELDS:
        if isinstance(params.get(name), str):
            try:
                params[name] = json.loads(params[name])
            except ValueError:
                raise BotApiError(400, f"Bad Request: can't parse {name} JSON object") from None
    return params


def create_app(
    token: str = DEMO_BOT_TOKEN, printer: Callable[[str], None] | None = None
) -> FastAPI:
    """The test server as an ASGI app."""
    state = TelegramState(token, printer)
    api = BotApi(state)
    app = FastAPI(title="Telegram Bot API test server", docs_url="/_control/docs")
    app.state.telegram = state

    @app.api_route("/bot{token}/{method}", methods=["GET", "POST"], include_in_schema=False)
    async def bot_api(token: str, method: str, request: Request) -> Response:
        if token != state.token:
            return _error(BotApiError(401, "Unauthorized"))
        record: dict[str, Any] = {"method": method, "time": time.time()}
        state.requests.append(record)
        try:
            params = await _params(request)
            record["params"] = params
            chat_id = params.get("chat_id")
            fault = state.fault_for(method, None if chat_id is None else str(chat_id))
            if fault is not None:
                spec, kind = fault
                record["fault"] = kind
                if kind == "timeout":
                    if spec.deliver:
                        await api.call(method, params)
                    await asyncio.sleep(spec.delay)
                return _fault_response(kind, spec)
            result = await api.call(method, params)
        except BotApiError as error:
            record["error"] = error.description
            return _error(error)
        record["ok"] = True
        return JSONResponse({"ok": True, "result": result})

    app.include_router(_control_router(state))
    return app


def _control_router(state: TelegramState) -> APIRouter:
    router = control_router(state, Fault)

    @router.put("/limits")
    async def set_limits(limits: Limits) -> Limits:
        state.limits = limits
        return limits

    @router.post("/chats")
    async def add_chat(spec: ChatSpec) -> dict[str, bool]:
        state.add_chat(spec)
        return {"ok": True}

    @router.post("/chats/{chat_id}/migrate")
    async def migrate(chat_id: str, to: str) -> dict[str, bool]:
        state.migrate(chat_id, to)
        return {"ok": True}

    @router.put("/chats/{chat_id}/member")
    async def membership(chat_id: str, member: bool) -> dict[str, bool]:
        state.chats[chat_id].kicked = not member
        return {"ok": True}

    @router.get("/messages")
    async def messages(chat_id: str) -> list[dict[str, Any]]:
        chat = state.chats.get(chat_id)
        if chat is None:
            return []
        return [{**public(m), "chat_id": chat_id} for m in chat.messages.values()]

    @router.get("/requests")
    async def requests(method: str | None = None) -> list[dict[str, Any]]:
        return [r for r in state.requests if method is None or r["method"] == method]

    @router.get("/stats")
    async def stats() -> dict[str, int]:
        return {
            "requests": len(state.requests),
            "violations": state.violations,
            "messages": sum(len(chat.messages) for chat in state.chats.values()),
        }

    @router.post("/press")
    async def press(press: Press) -> dict[str, str]:
        chat = state.chats[press.chat_id]
        message = chat.messages[press.message_id]
        query_id = str(len(state.callbacks) + 1)
        state.callbacks[query_id] = {"answered": False, "text": None, "show_alert": False}
        state.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": _user(press.user_id),
                    "message": state.message_for_api(chat, message),
                    "chat_instance": f"instance{chat.id}",
                    "data": press.data,
                }
            }
        )
        return {"callback_query_id": query_id}

    @router.get("/callbacks/{query_id}")
    async def callback(query_id: str) -> dict[str, Any]:
        return state.callbacks[query_id]

    @router.post("/command")
    async def command(command: Command) -> dict[str, int]:
        chat = state.chats[command.chat_id]
        message_id = chat.next_message_id
        chat.next_message_id += 1
        message = {
            "message_id": message_id,
            "from": _user(command.user_id),
            "date": int(time.time()),
            "text": command.text,
            "entities": [
                {"type": "bot_command", "offset": 0, "length": len(command.text.split()[0])}
            ],
        }
        chat.messages[message_id] = {**message, "_silent": False, "_edits": [], "_html": None}
        state.push_update({"message": {**message, "chat": chat.as_api()}})
        return {"message_id": message_id}

    return router


class TestServerClient(ControlClient):
    """The control API from a test, a benchmark or the demo."""

    __test__ = False  # not a pytest test class
    fault_model = Fault

    def limits(self, **limits: Any) -> None:
        self._json("PUT", "/limits", json=Limits(**limits).model_dump())

    def add_chat(
        self, chat_id: str, kind: str = "supergroup", topics: list[int] | None = None
    ) -> None:
        self._json("POST", "/chats", json={"id": chat_id, "type": kind, "topics": topics or []})

    def migrate(self, chat_id: str, to: str) -> None:
        self._json("POST", f"/chats/{chat_id}/migrate", params={"to": to})

    def membership(self, chat_id: str, member: bool) -> None:
        """Add the bot to the chat again, or kick it out (Telegram then answers 403)."""
        self._json("PUT", f"/chats/{chat_id}/member", params={"member": member})

    def messages(self, chat_id: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self._json("GET", "/messages", params={"chat_id": chat_id})
        return messages

    def requests(self, method: str | None = None) -> list[dict[str, Any]]:
        params = {"method": method} if method else {}
        requests: list[dict[str, Any]] = self._json("GET", "/requests", params=params)
        return requests

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = self._json("GET", "/stats")
        return stats

    def press(
        self, chat_id: str, message_id: int, data: str, user_id: int = DEMO_OPERATOR_ID
    ) -> str:
        body = {"chat_id": chat_id, "message_id": message_id, "data": data, "user_id": user_id}
        return str(self._json("POST", "/press", json=body)["callback_query_id"])

    def callback(self, query_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._json("GET", f"/callbacks/{query_id}")
        return answer

    def command(self, chat_id: str, text: str, user_id: int = DEMO_OPERATOR_ID) -> int:
        body = {"chat_id": chat_id, "text": text, "user_id": user_id}
        return int(self._json("POST", "/command", json=body)["message_id"])
