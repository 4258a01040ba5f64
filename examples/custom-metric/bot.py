"""The seed's Integration Guide, step 1, with tbmon: a custom metric from a bot.

    opentelemetry-instrument python examples/custom-metric/bot.py --seconds 30

The gauge goes on tbmon's meter, so it leaves with the bot's other metrics (every 2 s, over
OTLP, through the collector) and Prometheus shows it as ``my_custom_metric{job="<service>"}``.
Name it as Prometheus should show it: a gauge keeps its name, a counter gains ``_total``, and a
unit adds its suffix (``unit="s"`` on ``order_age`` shows ``order_age_seconds``).
"""

from __future__ import annotations

import argparse
import time

from tbmon.instrumentation import meter

custom_metric = meter().create_gauge("my_custom_metric", description="Description")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to keep reporting")
    parser.add_argument("--value", type=float, default=42.0, help="the value to report")
    arguments = parser.parse_args()
    deadline = time.monotonic() + arguments.seconds
    while time.monotonic() < deadline:
        custom_metric.set(arguments.value)
        time.sleep(1)


if __name__ == "__main__":
    main()
