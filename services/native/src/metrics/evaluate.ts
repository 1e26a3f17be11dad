/**
 * The aggregate `dspy.Evaluate` reports, and Python's `round(x, ndigits)` it relies on.
 *
 * dspy/evaluate/evaluate.py: `ncorrect = sum(scores)`, `score = round(100 * ncorrect / len(devset), 2)`.
 */

import { ValidationError } from "@dspex/protocol";

const view = new DataView(new ArrayBuffer(8));

/** |x| = mantissa * 2**exponent exactly, for finite x. */
function decompose(x: number): { negative: boolean; mantissa: bigint; exponent: number } {
  view.setFloat64(0, x);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exponent = -1074;
  if (biased !== 0) {
    mantissa |= 1n << 52n;
    exponent = biased - 1075;
  }
  return { negative: hi >>> 31 === 1, mantissa, exponent };
}

// CPython's float.__round__: beyond these ndigits the result is x itself, or a signed zero.
const NDIGITS_MAX = Math.trunc((53 - -1021) * 0.30103); // 323
const NDIGITS_MIN = -Math.trunc((1024 + 1) * 0.30103); // -308

/**
 * Python's `round(x, ndigits)` for a float x: the exact binary value of x rounded to `ndigits` decimal
 * places with ties to even (ties only happen when x is exactly representable, e.g. 0.125 -> 0.12 but
 * 2.675 -> 2.67 because the double is below 2.675), then converted back to the nearest double. NaN
 * and infinities are returned unchanged, the sign of zero is kept, and a result too large for a
 * double throws (Python raises OverflowError).
 */
export function pythonRound(x: number, ndigits: number): number {
  if (typeof x !== "number") throw new TypeError(`pythonRound: x must be a number, got ${typeof x}`);
  if (!Number.isInteger(ndigits)) throw new TypeError(`pythonRound: ndigits must be an integer, got ${ndigits}`);
  if (!Number.isFinite(x)) return x;
  if (ndigits > NDIGITS_MAX) return x;
  if (ndigits < NDIGITS_MIN) return 0.0 * x;
  if (x === 0) return x;
  const { negative, mantissa, exponent } = decompose(x);
  // |x| * 10**ndigits = num / den, exactly.
  let num = mantissa;
  let den = 1n;
  if (exponent > 0) num <<= BigInt(exponent);
  else den <<= BigInt(-exponent);
  if (ndigits > 0) num *= 10n ** BigInt(ndigits);
  else den *= 10n ** BigInt(-ndigits);
  let q = num / den;
  const twiceRemainder = 2n * (num % den);
  if (twiceRemainder > den || (twiceRemainder === den && (q & 1n) === 1n)) q += 1n;
  const magnitude = Number(`${q}e${-ndigits}`);
  if (magnitude === Infinity) throw new RangeError("rounded value too large to represent");
  return negative ? -magnitude : magnitude;
}

/**
 * Python's `sum(scores)`: left-to-right, booleans count as 0/1. (CPython 3.11 adds ints exactly and
 * floats with plain double additions; for integer totals below 2**53 JS addition is the same.)
 */
export function pythonSum(scores: ReadonlyArray<number | boolean>): number {
  let total = 0;
  for (const s of scores) total += s === true ? 1 : s === false ? 0 : s;
  return total;
}

/**
 * The score `dspy.Evaluate` reports for per-example metric results: `round(100 * sum(scores) / n, 2)`,
 * a percentage with two decimals rounded exactly like Python. Throws on an empty list (DSPy refuses an
 * empty devset).
 */
export function evaluateScore(scores: ReadonlyArray<number | boolean>): number {
  if (!Array.isArray(scores)) throw new ValidationError("scores must be an array", { field: "scores" });
  if (scores.length === 0) {
    throw new ValidationError("devset must contain at least one example, got an empty devset.", { field: "scores" });
  }
  scores.forEach((s, i) => {
    if (typeof s !== "number" && typeof s !== "boolean") {
      throw new ValidationError(`scores[${i}] must be a number or boolean, got ${typeof s}`, { field: `scores[${i}]` });
    }
  });
  return pythonRound((100 * pythonSum(scores)) / scores.length, 2);
}
