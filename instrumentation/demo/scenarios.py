"""The demo's scenarios: normal trading, and one per seed alert condition.

A scenario trades normally, then at given times changes what the bot does (its exposure) or
what the exchange does (through the exchange test server's control API: prices, volatility,
regime, latency, rejections). Every change is one the real world makes: a crash, a volatile
market, a regime change, a slow or failing exchange, a crashing bot. ``alerts`` names the alert
rules (``stack/prometheus/rules/``) whose condition the scenario brings about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    """What changes ``at`` seconds into the run."""

    at: float
    #: The bot's target exposure per symbol, as a fraction of its portfolio value.
    exposure: float | None = None
    #: Put all exposure in this symbol (the others are sold).
    concentrate: str | None = None
    #: Changes to the exchange's market (``MarketSettings``: volatility, momentum...).
    market: dict[str, float] = field(default_factory=dict)
    #: Price moves by symbol, as fractions (-0.4: a 40% crash).
    shock: dict[str, float] = field(default_factory=dict)
    #: Faults for the exchange to inject (``Fault``: latency, errors...).
    faults: tuple[dict[str, Any], ...] = ()
    #: End the process abruptly, as a crash would (no flush, no goodbye).
    die: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    alerts: tuple[str, ...] = ()
    steps: tuple[Step, ...] = field(default_factory=tuple)


#: Seconds of normal trading before a scenario's first change, so every metric has a baseline.
WARM_UP = 20.0
#: The exchange's market while nothing goes wrong: 1% a step, a step a second (a "day" of the
#: demo's compressed clock), trending enough for the momentum models to be right ~70% of the time.
NORMAL_MARKET: dict[str, float] = {"volatility": 0.01, "step_seconds": 1.0, "momentum": 0.7}
#: After the drawdown scenario's crash: prices barely move, so no new drawdown builds up.
CALM_MARKET: dict[str, float] = {"volatility": 0.001}
#: Even a good day has a hiccup: the exchange fails the first order placed (an internal error),
#: so the failure panels and the execution-failure rule have a series from the start.
NORMAL_FAULTS: tuple[dict[str, Any], ...] = (
    {"endpoints": ["order"], "methods": ["POST"], "error": "internal_error", "count": 1},
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("normal", "Normal trading on a trending market; no alert should fire."),
        Scenario(
            "drawdown",
            "The bot goes all in on BTC, then BTC crashes 40% (a drawdown above 25%) and the "
            "market calms down: once the crash leaves TBMON_ANALYTICS_WINDOW, the alert resolves.",
            alerts=("HighDrawdown", "HighPositionConcentration"),
            steps=(
                Step(WARM_UP, exposure=0.95, concentrate="BTC/USDT"),
                Step(WARM_UP + 8, shock={"BTC/USDT": -0.40}, market=CALM_MARKET),
            ),
        ),
        Scenario(
            "var_breach",
            "The market turns wildly volatile while the bot stays heavily invested in ETH.",
            alerts=("HighVaR", "HighPositionConcentration"),
            steps=(
                Step(
                    WARM_UP,
                    exposure=0.9,
                    concentrate="ETH/USDT",
                    market={"volatility": 0.15, "momentum": 0.0},
                ),
            ),
        ),
        Scenario(
            "accuracy_drop",
            "The market's regime turns mean-reverting: the momentum models are mostly wrong.",
            alerts=("LowModelAccuracy",),
            steps=(Step(WARM_UP, market={"momentum": -0.8}),),
        ),
        Scenario(
            "slow_api",
            "The exchange answers orders and market data in 1.5 s.",
            alerts=("SlowAPIResponses",),
            steps=(Step(WARM_UP, faults=({"latency": 1.5},)),),
        ),
        Scenario(
            "execution_failures",
            "The exchange rejects half of the orders for insufficient balance.",
            alerts=("TradingExecutionFailures",),
            steps=(
                Step(
                    WARM_UP,
                    faults=(
                        {
                            "endpoints": ["order"],
                            "methods": ["POST"],
                            "error": "insufficient_funds",
                            "error_rate": 0.5,
                        },
                    ),
                ),
            ),
        ),
        Scenario(
            "bot_dies",
            "The bot crashes: its telemetry stops without a goodbye.",
            alerts=("BotStoppedReporting",),
            steps=(Step(WARM_UP, die=True),),
        ),
    )
}
