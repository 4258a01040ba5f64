"""Implementation details of the instrumentation; nothing here is a public API."""
