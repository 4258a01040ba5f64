"""The local stack: start, supervise and stop the real backends on this machine (`tbmon stack`).

The backends' own configs (Prometheus, Alertmanager, Jaeger, Grafana, Loki, Compose, the
Kubernetes chart) and the provisioning script live in this package's folder as package data,
shared by the local stack and the Compose deployment; :mod:`tbmon.stack.resources` finds them.
"""
