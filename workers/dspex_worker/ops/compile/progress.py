"""What an optimizer job has done so far, counted from the optimizer's thread, and how it is stopped there.

DSPy calls the `JobCallback` at every LM call, module call and evaluation, and the optimizer calls the
`JobMetric`; both count, and both end the run at that call once the job is cancelled by raising `JobCancelled`,
a BaseException, so no optimizer's `except Exception` swallows it.
"""

from __future__ import annotations

import threading
from typing import Any

from dspy.utils.callback import BaseCallback

from ...jobs.run import JobRun
from ...protocol.generated.types import JobCounts
from ..metrics import numeric


class JobCancelled(BaseException):  # noqa: N818 - a BaseException on purpose: optimizers catch Exception
    """Raised inside the optimizer's thread at its next LM/module/metric call once the job is cancelled."""


class Progress:
    """The counters of one run (thread-safe); events go out through the run."""

    def __init__(self, run: JobRun) -> None:
        self.bind(run)
        self._lock = threading.Lock()
        self.stage = "starting"
        self.trials = 0
        self.lm_calls = 0
        self.metric_calls = 0
        self.metric_sum = 0.0
        self.best_score: float | None = None
        self.last_score: float | None = None
        self.baseline_score: float | None = None

    def bind(self, run: JobRun) -> None:
        """Reports through `run` (a claim that lost a race is retried with a new run)."""
        self.run = run
        run.counters = self.fields
        run.counts = self.counts

    # -- from the optimizer's thread ----------------------------------------------------------------------------
    def check(self) -> None:
        if self.run.cancelled.is_set():
            raise JobCancelled(self.run.job)

    def set_stage(self, stage: str) -> None:
        with self._lock:
            self.stage = stage
        self.run.emit("stage", **self.fields())  # the counters as they are now, not when the event goes out

    def set_baseline(self, score: float) -> None:
        with self._lock:
            self.baseline_score = score

    def lm_called(self) -> None:
        self.check()
        with self._lock:
            self.lm_calls += 1

    def metric_called(self, score: float | None) -> None:
        with self._lock:
            self.metric_calls += 1
            if score is not None:
                self.metric_sum += score

    def trial(self, score: float) -> None:
        """A `dspy.Evaluate` finished (a percentage); the best counts only while compiling, not the baseline."""
        with self._lock:
            self.trials += 1
            self.last_score = score
            if self.stage == "compiling" and (self.best_score is None or score > self.best_score):
                self.best_score = score
        self.run.emit("trial", **self.fields())

    # -- for the events and the record --------------------------------------------------------------------------
    def fields(self) -> dict[str, Any]:
        with self._lock:
            return {
                "stage": self.stage,
                "trials": self.trials,
                "lm_calls": self.lm_calls,
                "metric_calls": self.metric_calls,
                "metric_mean": round(self.metric_sum / self.metric_calls, 4) if self.metric_calls else None,
                "best_score": self.best_score,
                "last_score": self.last_score,
                "baseline_score": self.baseline_score,
            }

    def counts(self) -> JobCounts:
        with self._lock:
            return {"done": self.trials, "total": None, "score": self.best_score, "stage": self.stage}


class JobCallback(BaseCallback):  # type: ignore[misc]
    """Counts LM calls and evaluation trials, and ends the run at its next call once the job is cancelled."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.progress.lm_called()

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.progress.check()

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.progress.check()

    def on_evaluate_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        score = getattr(outputs, "score", None)
        if isinstance(score, int | float):
            self.progress.trial(float(score))


class JobMetric:
    """The named metric as every optimizer calls it, GEPA's five-argument form included; counts its calls."""

    def __init__(self, name: str, fn: Any, args: dict[str, Any], progress: Progress) -> None:
        self.name = name
        self.fn = fn
        self.args = args
        self.progress = progress

    def __call__(self, gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
        self.progress.check()
        value = self.fn(gold, pred, trace, **self.args)
        self.progress.metric_called(numeric(value))
        return float(value) if isinstance(value, bool) else value
