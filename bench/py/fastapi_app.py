"""Scenario 4: the same DSPy program served with FastAPI + uvicorn the way DSPy's deployment guide does it
(docs/tutorials/deployment: `dspy.settings.configure(lm=..., async_max_workers=...)`, the program wrapped
in `dspy.asyncify`, a pydantic request model, `{"status": "success", "data": result.toDict()}`), on the
zero-latency `dspex/echo` LM.

Configured by environment (uvicorn imports this module in each of its worker processes):
  BENCH_SIGNATURE         the DSPy signature string
  BENCH_ASYNC_MAX_WORKERS asyncify's thread pool size (the guide: "default is 8")
  BENCH_LM                LM model name (default dspex/echo)
"""

from __future__ import annotations

import os

import dspy
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from dspex_worker.lm.echo import EchoLM

app = FastAPI(title="DSPy Program API", description="DSPy program behind FastAPI (benchmark)", version="1.0.0")


class Review(BaseModel):
    review: str


lm = EchoLM(os.environ.get("BENCH_LM", "dspex/echo"))
dspy.settings.configure(lm=lm, async_max_workers=int(os.environ.get("BENCH_ASYNC_MAX_WORKERS", "8")))
dspy_program = dspy.asyncify(dspy.Predict(os.environ["BENCH_SIGNATURE"]))


@app.post("/predict")
async def predict(body: Review) -> dict[str, object]:
    try:
        result = await dspy_program(review=body.review)
        return {"status": "success", "data": result.toDict()}
    except Exception as e:
        raise HTTPException(status_code=500, detail=str(e)) from e


@app.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {"ok": True}
