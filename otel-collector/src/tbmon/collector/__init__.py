"""The OpenTelemetry Collector's files, as package data: ``config.yaml`` (the pipeline the stack
runs) and ``builder-config.yaml`` (the Collector Builder manifest install.sh builds from).

The stack finds them through :mod:`tbmon.stack.resources`; the folder ``otel-collector/``
around this source root holds the collector's image (Dockerfile, healthcheck).
"""
