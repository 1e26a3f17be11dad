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
