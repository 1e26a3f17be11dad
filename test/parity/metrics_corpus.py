"""Run DSPy's own metric functions over a corpus from test/parity/metrics-parity.test.ts.

Reads one JSON document on stdin, writes one JSON document on stdout; nothing here reimplements a
metric, every value comes from dspy (or from Python built-ins DSPy itself calls: round, sum).

Floats travel as repr() strings ("0.3333333333333333", "-0.0", "nan", "inf") so the TypeScript side
can compare doubles bit for bit. Errors travel as {"error": "<ExceptionClass>"}.
"""

import contextlib
import json
import logging
import os
import re
import sys

import dspy
from dspy.dsp.utils import DPR_normalize, has_answer
from dspy.evaluate.metrics import (
    EM,
    F1,
    HotPotF1,
    _passage_match,
    answer_exact_match,
    answer_passage_match,
    em_score,
    f1_score,
    hotpot_f1_score,
    normalize_text,
    precision_score,
)
from metrics_unicode_tables import compute_tables, versions


def num(x):
    """A metric's number as repr (keeps int 0 vs float visible but both parse to the same double)."""
    if isinstance(x, bool):
        return x
    return repr(float(x)) if isinstance(x, float) else repr(x)


def pyfloat(s):
    return float(s)


def guarded(fn, *args, **kwargs):
    """fn(*args, **kwargs), or {"error": <exception class>} when it raises."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        return {"error": type(exc).__name__}


def as_num(fn, *args):
    value = fn(*args)
    return value if isinstance(value, dict) else num(value)


def run_pairs(pairs):
    out = []
    for p in pairs:
        pred, answers = p["prediction"], p["answers"]
        first = answers[0] if answers else ""
        out.append(
            {
                "em": guarded(EM, pred, answers),
                "f1": as_num(guarded, F1, pred, answers),
                "hotpot": as_num(guarded, HotPotF1, pred, answers),
                "em_score": em_score(pred, first),
                "f1_score": num(f1_score(pred, first)),
                "precision": num(precision_score(pred, first)),
                "hotpot_score": num(hotpot_f1_score(pred, first)),
                "norm_pred": normalize_text(pred),
                "norm_answers": [normalize_text(a) for a in answers],
                "dpr_pred": DPR_normalize(pred),
            }
        )
    return out


def run_passages(cases):
    out = []
    for c in cases:
        passages, answers = c["passages"], c["answers"]
        out.append(
            {
                "match": _passage_match(passages, answers),
                "has_answer_raw": [has_answer([DPR_normalize(a) for a in answers], p) for p in passages],
                "dpr_passages": [DPR_normalize(normalize_text(p)) for p in passages],
            }
        )
    return out


def run_examples(cases):
    out = []
    for c in cases:
        example = dspy.Example(answer=c["answer"])
        res = {}
        if "frac" in c:
            pred = dspy.Prediction(answer=c["pred_answer"])
            res["exact"] = guarded(answer_exact_match, example, pred, frac=pyfloat(c["frac"]))
        if "context" in c:
            pred = dspy.Prediction(context=c["context"])
            res["passage"] = guarded(answer_passage_match, example, pred)
        out.append(res)
    return out


class _Echo(dspy.Module):
    def forward(self, idx):
        return dspy.Prediction(idx=idx)


def run_evaluate(score_lists):
    """dspy.Evaluate itself, with a program that echoes the example index and a metric returning the given score."""
    program = _Echo()
    out = []
    for scores in score_lists:
        devset = [dspy.Example(idx=i).with_inputs("idx") for i in range(len(scores))]

        def metric(example, pred, trace=None, scores=scores):
            return scores[pred.idx]

        evaluate = dspy.Evaluate(
            devset=devset, metric=metric, num_threads=1, display_progress=False, display_table=False
        )
        out.append(num(evaluate(program).score))
    return out


def run_rounds(cases):
    out = []
    for x, nd in cases:
        out.append(as_num(guarded, round, pyfloat(x), nd))
    return out


def run_sweep(sweep):
    cps = [cp for lo, hi, step in sweep["ranges"] for cp in range(lo, hi + 1, step) if not 0xD800 <= cp <= 0xDFFF]
    chars = [chr(cp) for cp in cps]
    result = {"count": len(cps), "normalize": [], "dpr": []}
    for before, after in sweep["normalize_templates"]:
        result["normalize"].append([normalize_text(before + c + after) for c in chars])
    for before, after in sweep["dpr_templates"]:
        result["dpr"].append(["\x00".join(DPR_normalize(before + c + after)) for c in chars])
    return result


def main():
    logging.getLogger("dspy.evaluate.evaluate").setLevel(logging.WARNING)  # one INFO line per Evaluate call
    request = json.loads(sys.stdin.read())
    # dspy's f1_score/precision_score print a timestamped line on the both-empty edge case: keep stdout clean.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        response = {
            "versions": versions(),
            "pairs": run_pairs(request.get("pairs", [])),
            "passages": run_passages(request.get("passages", [])),
            "examples": run_examples(request.get("examples", [])),
            "evaluate": run_evaluate(request.get("evaluate", [])),
            "rounds": run_rounds(request.get("rounds", [])),
            "normalize": [normalize_text(s) for s in request.get("normalize", [])],
        }
        if request.get("sweep"):
            response["sweep"] = run_sweep(request["sweep"])
        if request.get("tables"):
            response["tables"] = compute_tables()
    text = json.dumps(response, ensure_ascii=False)
    # Lone surrogates cannot be written as UTF-8: escape them, JSON.parse restores them.
    text = re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)
    sys.stdout.buffer.write(text.encode("utf-8"))


if __name__ == "__main__":
    main()
