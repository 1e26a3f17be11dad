"""Logs, traces and metrics of the worker: one log line shape (log.py), OpenTelemetry for requests (telemetry.py)
and for DSPy module and LM calls (dspy_callback.py)."""
