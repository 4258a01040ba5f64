"""The demo's ensemble of ML agents: three small models voting on each symbol's next move.

They are toy models, but they behave like real ones where monitoring is concerned: each
prediction takes time (``model_inference_duration_seconds``), is right or wrong once the next
price is known (``agent_prediction_accuracy``), earns a reward (``agent_cumulative_reward``),
and the agents agree more or less (``ensemble_consensus_score``). The market's regime decides
how good they are: momentum models are right about 70 % of the time when returns trend (the
exchange's default) and wrong more often than not when the regime turns mean-reverting.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from tbmon.instrumentation import TradingMetrics


class Direction(Enum):
    UP = "up"
    DOWN = "down"


def _sign(value: float) -> Direction:
    return Direction.UP if value >= 0 else Direction.DOWN


#: A model: recent returns of one symbol, newest last -> its forecast of the next return.
Model = Callable[[Sequence[float]], float]


@dataclass
class Agent:
    """One model with its name, the ``model`` label of its inference time and its history."""

    name: str
    model: str
    forecast: Model
    #: Seconds one inference takes (uniform between the two), as a real model's would.
    latency: tuple[float, float] = (0.001, 0.004)
    pending: dict[str, Direction] = field(default_factory=dict)


def _last_return(returns: Sequence[float]) -> float:
    return returns[-1]


def _recent_trend(returns: Sequence[float]) -> float:
    return sum(returns[-3:])


def _smoothed(returns: Sequence[float]) -> float:
    weight, total = 1.0, 0.0
    for r in reversed(returns[-6:]):
        total += weight * r
        weight *= 0.6
    return total


def default_agents() -> list[Agent]:
    return [
        Agent("lstm", "lstm-v3", _last_return),
        Agent("xgboost", "xgboost-v7", _recent_trend, latency=(0.0005, 0.002)),
        Agent("ppo", "ppo-v2", _smoothed, latency=(0.002, 0.006)),
    ]


@dataclass
class Vote:
    """The ensemble's decision for one symbol: the majority direction and how many agreed."""

    direction: Direction
    consensus: float


class Ensemble:
    """Runs every agent on a symbol's returns, scores their previous calls, and votes."""

    def __init__(self, metrics: TradingMetrics, rng: random.Random, history: int = 20) -> None:
        self.metrics, self.rng = metrics, rng
        self.agents = default_agents()
        self._returns: dict[str, deque[float]] = {}
        self._history = history

    def observe(self, symbol: str, realised_return: float) -> None:
        """The symbol's latest return: scores each agent's pending call on it."""
        returns = self._returns.setdefault(symbol, deque(maxlen=self._history))
        returns.append(realised_return)
        actual = _sign(realised_return)
        for agent in self.agents:
            called = agent.pending.pop(symbol, None)
            if called is None:
                continue
            correct = called is actual
            self.metrics.record_prediction(agent.name, correct=correct)
            self.metrics.add_reward(agent.name, abs(realised_return) * 100 * (1 if correct else -1))

    def vote(self, symbol: str) -> Vote | None:
        """Every agent's call on the symbol's next move; None until it has two returns."""
        returns = self._returns.get(symbol)
        if returns is None or len(returns) < 2:
            return None
        calls = []
        for agent in self.agents:
            with self.metrics.inference(agent.model):
                time.sleep(self.rng.uniform(*agent.latency))
                call = _sign(agent.forecast(list(returns)))
            agent.pending[symbol] = call
            calls.append(call)
        direction, agreeing = Counter(calls).most_common(1)[0]
        consensus = agreeing / len(calls)
        self.metrics.set_ensemble_consensus(consensus)
        return Vote(direction, consensus)
