/**
 * The signature as DSPy's adapters see it once the worker has built the `dspy.Signature` class
 * (workers/dspex_worker/signatures.py `build_signature`): default descriptions `${name}`, default instructions
 * "Given the fields ...", the "Constraints:" text pydantic-field constraints get, and `Signature.instructions`
 * being `inspect.cleandoc` of the class docstring. Plus ChainOfThought's extension with a `reasoning` output.
 */

import { CONSTRAINT_KEYS, frozen } from "../signature/types.js";
import type { SignatureWire, TypeExpr } from "@dspex/protocol";
import { pyCleandoc, pyStrOf } from "./python.js";

export interface AdapterField {
  readonly name: string;
  readonly type: TypeExpr;
  readonly side: "input" | "output";
  /** The description as DSPy stores it (`${name}` when none was given). */
  readonly desc: string;
  /** The "Constraints:" text of dspy/signatures/field.py, or "" without constraints. */
  readonly constraints: string;
}

export interface AdapterSignature {
  /** `Signature.instructions`: the instructions (or DSPy's default) after `inspect.cleandoc`. */
  readonly instructions: string;
  readonly inputs: readonly AdapterField[];
  readonly outputs: readonly AdapterField[];
}

/** dspy/signatures/field.py PYDANTIC_CONSTRAINT_MAP, for the keys the wire carries. */
const CONSTRAINT_TEXT: Record<(typeof CONSTRAINT_KEYS)[number], string> = {
  gt: "greater than: ",
  ge: "greater than or equal to: ",
  lt: "less than: ",
  le: "less than or equal to: ",
  min_length: "minimum length: ",
  max_length: "maximum length: ",
};

/** The instructions DSPy gives a signature without any: "Given the fields `a`, `b`, produce the fields `c`." */
export function defaultInstructions(sig: Pick<SignatureWire, "inputs" | "outputs">): string {
  const names = (fields: ReadonlyArray<{ name: string }>) => fields.map((f) => `\`${f.name}\``).join(", ");
  return `Given the fields ${names(sig.inputs)}, produce the fields ${names(sig.outputs)}.`;
}

const cache = new WeakMap<SignatureWire, AdapterSignature>();

/** The adapters' view of a (checked) wire signature; cached per signature object. */
export function adapterSignature(sig: SignatureWire): AdapterSignature {
  let out = cache.get(sig);
  if (out === undefined) {
    const field = (side: "input" | "output") => (f: SignatureWire["inputs"][number]): AdapterField => {
      const c = f.constraints;
      // The worker passes constraints to dspy.InputField/OutputField in CONSTRAINT_KEYS order (checkSignature's).
      const constraints = c
        ? CONSTRAINT_KEYS.filter((k) => c[k] !== undefined)
            .map((k) => `${CONSTRAINT_TEXT[k]}${pyStrOf(c[k])}`)
            .join(", ")
        : "";
      return Object.freeze({ name: f.name, type: f.type, side, desc: f.desc ?? `\${${f.name}}`, constraints });
    };
    out = Object.freeze({
      // Empty instructions count as none: pydantic's create_model leaves `__doc__` None for "", and DSPy then
      // writes its default (whitespace-only instructions are kept and clean up to "").
      instructions: pyCleandoc(sig.instructions ? sig.instructions : defaultInstructions(sig)),
      inputs: Object.freeze(sig.inputs.map(field("input"))),
      outputs: Object.freeze(sig.outputs.map(field("output"))),
    });
    cache.set(sig, out);
  }
  return out;
}

/** The field dspy.ChainOfThought prepends to the outputs: `reasoning: str = dspy.OutputField(desc="${reasoning}")`. */
export const REASONING_FIELD = Object.freeze({ name: "reasoning", type: Object.freeze({ kind: "str" }), desc: "${reasoning}" }) as {
  readonly name: "reasoning";
  readonly type: TypeExpr;
  readonly desc: string;
};

/**
 * The signature `dspy.ChainOfThought(sig)` predicts with: `sig.prepend("reasoning", OutputField(desc=
 * "${reasoning}"), str)`. `prepend` rebuilds the class from `Signature(fields, sig.instructions)`, so the new
 * signature's instructions are the old ones after `inspect.cleandoc` (cleandoc twice is not always cleandoc
 * once), and the field dict `dict(inputs + [reasoning] + outputs)` decides what a clash does: an output already
 * named `reasoning` keeps its type and description and moves first; an input named `reasoning` becomes the new
 * output (and is no input any more).
 */
export function chainOfThoughtSignature(sig: SignatureWire): SignatureWire {
  let out = cotCache.get(sig);
  if (out === undefined) {
    out = extendWithReasoning(sig);
    cotCache.set(sig, out);
  }
  return out;
}

const cotCache = new WeakMap<SignatureWire, SignatureWire>();

function extendWithReasoning(sig: SignatureWire): SignatureWire {
  const instructions = adapterSignature(sig).instructions;
  const existing = sig.outputs.find((f) => f.name === REASONING_FIELD.name);
  const reasoning = existing ?? { name: REASONING_FIELD.name, type: REASONING_FIELD.type, desc: REASONING_FIELD.desc };
  return Object.freeze({
    instructions,
    inputs: frozen(sig.inputs.filter((f) => f.name !== REASONING_FIELD.name)),
    outputs: frozen([reasoning, ...sig.outputs.filter((f) => f.name !== REASONING_FIELD.name)]),
  });
}

/** The module kinds whose prompts the native adapters reproduce. */
export type ModuleKind = "predict" | "chain_of_thought";

/** The signature a module sends to its adapter: the signature itself for Predict, extended for ChainOfThought. */
export function moduleSignature(sig: SignatureWire, module: ModuleKind = "predict"): SignatureWire {
  return module === "chain_of_thought" ? chainOfThoughtSignature(sig) : sig;
}
