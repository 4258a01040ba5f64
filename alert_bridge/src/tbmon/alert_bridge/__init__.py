"""The Telegram alert bridge: Alertmanager's webhook in, Telegram messages out, nothing lost.

``create_app(read_settings(BridgeSettings))`` is the ASGI app ``tbmon bridge serve`` runs
(``read_settings``: :mod:`tbmon.settings`). The names are
imported on first use, so reading the settings does not load the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tbmon.alert_bridge.app import create_app
    from tbmon.alert_bridge.settings import BridgeSettings

__all__ = ["BridgeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from tbmon.alert_bridge.app import create_app  # noqa: PLC0415 - on first use

        return create_app
    if name == "BridgeSettings":
        from tbmon.alert_bridge import settings  # noqa: PLC0415 - on first use

        return getattr(settings, name)
    raise AttributeError(name)
