"""The demo bot's process: ``opentelemetry-instrument python -m tbmon.demo``.

``tbmon demo`` starts it this way, with the exchange test server's URL; run by hand it trades on
any Binance-compatible URL given.
"""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from tbmon.demo.bot import DemoBot
from tbmon.demo.scenarios import SCENARIOS


def main(
    exchange_url: Annotated[str, typer.Option(help="Base URL of a Binance-compatible API.")],
    scenario: Annotated[str, typer.Option(help=f"One of: {', '.join(SCENARIOS)}.")] = "normal",
    duration: Annotated[float, typer.Option(min=0, help="Seconds to trade; 0: forever.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the agents' randomness.")] = 7,
) -> None:
    """Trade on the exchange at EXCHANGE_URL, following SCENARIO."""
    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}")
    # Stopped by SIGTERM, the bot exits as from a return, so the SDK's exit hooks flush the
    # telemetry still queued (the default action would drop it).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    DemoBot(exchange_url, SCENARIOS[scenario], seed).run(duration)


if __name__ == "__main__":
    typer.run(main)
