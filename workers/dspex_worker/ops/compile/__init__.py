"""op `compile`: optimizer jobs (runner.py), their checks (spec.py), the DSPy optimizers (optimizers.py) and their
progress and cancellation inside the optimizer's thread (progress.py)."""
