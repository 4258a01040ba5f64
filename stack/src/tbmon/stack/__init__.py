"""The local stack: start, supervise and stop the real backends on this machine (`tbmon stack`).

The backends' own configs (Prometheus, Alertmanager, Jaeger, Grafana, Compose) live in the
folders beside this package, shared by the local stack and the Compose deployment.
"""
