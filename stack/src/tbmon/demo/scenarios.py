"""The demo's scenarios: normal trading, and one per seed alert condition.

A scenario trades normally, then at given times changes what the bot does (its exposure) or
what the exchange does (through the exchange test server's control API: prices, volatility,
regime, latency, rejections). Every change is one the real world makes: a crash, a volatile
market, a regime change, a slow or failing exchange, a crashing bot. ``alerts`` names the alert
rules (``tbmon/stack/prometheus/rules/``) whose
condition the scenario brings about, and ``messages``
the Telegram messages they send: when each rule's condition starts (or stops) holding, from
which ``tbmon demo`` tells when each message should arrive and waits for it.
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
class Message:
    """A Telegram message a scenario's alert sends."""

    alert: str
    severity: str
    #: Seconds into the run at which the rule's condition starts to hold (or, for the message
    #: saying the alert resolved, stops holding), as measured on the demo.
    condition_at: float
    resolved: bool = False

    def __str__(self) -> str:
        what = f"{self.alert} ({self.severity})"
        return f"{what} resolved" if self.resolved else what


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    alerts: tuple[str, ...] = ()
    steps: tuple[Step, ...] = field(default_factory=tuple)
    messages: tuple[Message, ...] = ()


#: Seconds of normal trading before a scenario's first change, so every metric has a baseline.
WARM_UP = 20.0
#: The exchange's market while nothing goes wrong: 1% a step, a step a second (a "day" of the
#: demo's compressed clock), trending enough for the momentum models to be right ~70% of the time.
NORMAL_MARKET: dict[str, float] = {"volatility": 0.01, "step_seconds": 1.0, "momentum": 0.7}
#: After the drawdown scenario's crash: prices barely move, so no new drawdown builds up.
CALM_MARKET: dict[str, float] = {"volatility": 0.001}
#: When BTC crashes in the drawdown scenario, and how long until it recovers: long enough for
#: HighDrawdown's critical alert (for: 1m) to fire and reach Telegram first.
CRASH_AT = WARM_UP + 8
RECOVERY_AFTER = 150.0
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
            "The bot goes all in on BTC, then BTC crashes 40% (the portfolio falls more than 25% "
            "below its peak) and the market calms down; two and a half minutes later BTC "
            "recovers past its old price, the portfolio makes a new peak and the alert resolves.",
            alerts=("HighDrawdown", "HighPositionConcentration"),
            steps=(
                Step(WARM_UP, exposure=0.95, concentrate="BTC/USDT"),
                Step(CRASH_AT, shock={"BTC/USDT": -0.40}, market=CALM_MARKET),
                # 0.6 * 2 = 1.2 of the pre-crash price: the portfolio makes a new peak.
                Step(CRASH_AT + RECOVERY_AFTER, shock={"BTC/USDT": 1.0}),
            ),
            messages=(
                Message("HighDrawdown", "critical", CRASH_AT),
                Message("HighDrawdown", "critical", CRASH_AT + RECOVERY_AFTER, resolved=True),
                Message("HighPositionConcentration", "warning", WARM_UP),
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
            messages=(
                Message("HighVaR", "critical", WARM_UP + 10),
                Message("HighPositionConcentration", "warning", WARM_UP),
            ),
        ),
        Scenario(
            "accuracy_drop",
            "The market's regime turns mean-reverting: the momentum models are mostly wrong.",
            alerts=("LowModelAccuracy",),
            steps=(Step(WARM_UP, market={"momentum": -0.8}),),
            messages=(Message("LowModelAccuracy", "critical", WARM_UP + 40),),
        ),
        Scenario(
            "slow_api",
            "The exchange answers orders and market data in 1.5 s.",
            alerts=("SlowAPIResponses",),
            steps=(Step(WARM_UP, faults=({"latency": 1.5},)),),
            messages=(Message("SlowAPIResponses", "warning", WARM_UP + 20),),
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
            messages=(Message("TradingExecutionFailures", "critical", WARM_UP + 20),),
        ),
        Scenario(
            "bot_dies",
            "The bot crashes: its telemetry stops without a goodbye.",
            alerts=("BotStoppedReporting",),
            steps=(Step(WARM_UP, die=True),),
            # Its rule waits for the newest heartbeat to be 2 minutes old.
            messages=(Message("BotStoppedReporting", "critical", WARM_UP + 120),),
        ),
    )
}
