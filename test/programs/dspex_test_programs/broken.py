"""Programs that must be reported, not served (named by DSPEX_PROGRAMS in the tests)."""

from __future__ import annotations

import dspy


class TwoPredictorsNoSignature(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = dspy.Predict("x -> y")
        self.b = dspy.Predict("y -> z")


class BadPool(dspy.Module):
    pool = "tpu"
    signature = "x -> y"


class Raises(dspy.Module):
    """Served, but its forward raises: the caller gets a ProgramError with the type and message only."""

    signature = "x -> y"

    def forward(self, x: str) -> dspy.Prediction:
        raise KeyError(f"no entry for {x}")


class WrongOutputs(dspy.Module):
    """Served, but it answers a field it does not declare and not the one it does."""

    signature = "x -> y"

    def forward(self, x: str) -> dspy.Prediction:
        return dspy.Prediction(z=x)


class Hangs(dspy.Module):
    """Served, but its forward blocks far past any deadline: the caller gets DeadlineExceeded, the worker lives."""

    signature = "x -> y"

    def forward(self, x: str) -> dspy.Prediction:
        import time

        time.sleep(6)  # far past the test's 1.5 s deadline; short enough not to hold the worker's drain at shutdown
        return dspy.Prediction(y=x)
