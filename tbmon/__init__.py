"""tbmon: an OpenTelemetry-first monitoring stack for Python trading bots."""

__version__ = "0.1.0"
