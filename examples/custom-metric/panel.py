"""The seed's Integration Guide, step 3: a dashboard panel for the custom metric.

tbmon's dashboards are code (tbmon/stack/dashboards.py); add the
panel to a dashboard's rows there and
run `tbmon stack dashboards` to regenerate the JSON under tbmon/stack/grafana/dashboards/. This file
builds the panel with the same helpers and prints its JSON, which is what the seed's step 3 shows.
"""

from __future__ import annotations

import json

from tbmon.stack.dashboards import Panel, prom, timeseries

PANEL: Panel = timeseries(
    "Custom metric",
    [prom('my_custom_metric{job=~"$job"}', "Custom Metric")],
    "The bot's my_custom_metric (examples/custom-metric).",
)

if __name__ == "__main__":
    print(json.dumps(PANEL.to_json(panel_id=1, x=0, y=0), indent=2))
