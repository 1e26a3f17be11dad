/** A checked signature with precompiled validators and JSON Schemas, cached per signature. */

import { SignatureError } from "@dspex/protocol";
import { LruCache } from "./lru.js";
import { clearParseCache, parseSignature } from "./parser.js";
import { type JsonSchema, signatureJsonSchema } from "./schema.js";
import type { SignatureWire } from "./types.js";
import {
  type CheckResult,
  compileValidators,
  type ExtraPolicy,
  problemsToError,
  type SideValidator,
} from "./validate.js";
import { checkSignature } from "./wire.js";

export interface ValidateOptions {
  /**
   * Keys that are not fields: `error` (default for inputs), `keep` (default for outputs), `drop`, or a list
   * of names to keep while any other key is an error.
   */
  extra?: ExtraPolicy;
}

export class CompiledSignature<
  I extends Record<string, unknown> = Record<string, unknown>,
  O extends Record<string, unknown> = Record<string, unknown>,
> {
  /** The signature in wire form (frozen): put this in the request's `signature`. */
  readonly wire: SignatureWire;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  private readonly inputs: SideValidator;
  private readonly outputs: SideValidator;
  private schemas: { inputs?: JsonSchema; outputs?: JsonSchema } = {};

  /** Prefer `compileSignature`, which checks and caches. `wire` must already be checked. */
  constructor(wire: SignatureWire) {
    this.wire = wire;
    this.inputNames = Object.freeze(wire.inputs.map((f) => f.name));
    this.outputNames = Object.freeze(wire.outputs.map((f) => f.name));
    const v = compileValidators(wire);
    this.inputs = v.inputs;
    this.outputs = v.outputs;
    if (Object.isFrozen(wire) && !byObject.has(wire)) byObject.set(wire, this);
  }

  get instructions(): string | undefined {
    return this.wire.instructions;
  }

  /** Validates and coerces inputs; returns all problems instead of throwing. */
  checkInputs(inputs: unknown, options: ValidateOptions = {}): CheckResult<I> {
    return this.inputs.check(inputs, options.extra ?? "error") as CheckResult<I>;
  }

  /** Validates and coerces outputs; returns all problems instead of throwing. */
  checkOutputs(outputs: unknown, options: ValidateOptions = {}): CheckResult<O> {
    return this.outputs.check(outputs, options.extra ?? "keep") as CheckResult<O>;
  }

  /** Validates and coerces inputs before publish. Throws ValidationError listing every problem. */
  validateInputs(inputs: unknown, options: ValidateOptions = {}): I {
    const r = this.checkInputs(inputs, options);
    if (!r.ok) throw problemsToError(r.problems, "input");
    return r.value;
  }

  /** Validates and coerces the outputs of a reply. Throws ValidationError listing every problem. */
  validateOutputs(outputs: unknown, options: ValidateOptions = {}): O {
    const r = this.checkOutputs(outputs, options);
    if (!r.ok) throw problemsToError(r.problems, "output");
    return r.value;
  }

  /** JSON Schema (draft 2020-12) of the inputs object. */
  get inputsSchema(): JsonSchema {
    return (this.schemas.inputs ??= signatureJsonSchema(this.wire, "inputs"));
  }

  /** JSON Schema (draft 2020-12) of the outputs object. */
  get outputsSchema(): JsonSchema {
    return (this.schemas.outputs ??= signatureJsonSchema(this.wire, "outputs"));
  }

  /** DSPy's string form, `a, b -> c` (field names only). */
  toString(): string {
    return `${this.inputNames.join(", ")} -> ${this.outputNames.join(", ")}`;
  }

  toJSON(): SignatureWire {
    return this.wire;
  }
}

/** Anything a signature can be given as: a DSPy string, wire JSON, a compiled signature or a builder. */
export type SignatureInput =
  | string
  | SignatureWire
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  | CompiledSignature<any, any>
  | SignatureSourceBuilder;

/** What compileSignature needs from a builder (builder.ts's SignatureBuilder; structural, so no import cycle). */
export interface SignatureSourceBuilder {
  toWire(): SignatureWire;
}
/** @deprecated alias of SignatureInput */
export type SignatureSource = SignatureInput;

const byText = new LruCache<string, CompiledSignature>(1024);
const byJson = new LruCache<string, CompiledSignature>(1024);
let byObject = new WeakMap<object, CompiledSignature>();

/**
 * Compiles a signature given as a DSPy string (with optional instructions), as wire JSON (checked; throws
 * SignatureError naming the path of the problem), or an already compiled signature (returned as is).
 * Cached: strings by text, frozen wire objects by identity, other objects by their JSON text.
 */
export function compileSignature(source: string, instructions?: string): CompiledSignature;
export function compileSignature<I extends Record<string, unknown>, O extends Record<string, unknown>>(
  source: CompiledSignature<I, O>,
): CompiledSignature<I, O>;
export function compileSignature(source: unknown, instructions?: string): CompiledSignature;
export function compileSignature(source: unknown, instructions?: string): CompiledSignature {
  if (source instanceof CompiledSignature) {
    if (instructions !== undefined) throw new SignatureError("instructions can only be given with a signature string");
    return source;
  }
  if (isBuilder(source)) return compileSignature(source.toWire());
  if (typeof source === "string") {
    const key = instructions === undefined ? source : `${source}\u0000${instructions}`;
    let compiled = byText.get(key);
    if (compiled === undefined) {
      compiled = new CompiledSignature(parseSignature(source, instructions));
      byText.set(key, compiled);
      byObject.set(compiled.wire, compiled);
    }
    return compiled;
  }
  if (instructions !== undefined) {
    throw new SignatureError("instructions can only be given with a signature string");
  }
  if (source !== null && typeof source === "object") {
    const frozen = Object.isFrozen(source);
    if (frozen) {
      const hit = byObject.get(source);
      if (hit) return hit;
    }
    let key: string | undefined;
    try {
      key = JSON.stringify(source);
    } catch {
      key = undefined;
    }
    let compiled = key === undefined ? undefined : byJson.get(key);
    if (compiled === undefined) {
      compiled = new CompiledSignature(checkSignature(source));
      if (key !== undefined) byJson.set(key, compiled);
    }
    if (frozen) byObject.set(source, compiled);
    return compiled;
  }
  return new CompiledSignature(checkSignature(source));
}

/** Empties every signature cache (parsed strings and compiled signatures). */
export function clearSignatureCache(): void {
  clearParseCache();
  byText.clear();
  byJson.clear();
  byObject = new WeakMap();
}

function isBuilder(value: unknown): value is { toWire(): SignatureWire } {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof (value as { toWire?: unknown }).toWire === "function" &&
    !(value instanceof CompiledSignature)
  );
}

/**
 * The checked, frozen wire form of a signature given in any form; `instructions` only with a string (as
 * `dspy.Signature(text, instructions)`). Throws SignatureError.
 */
export function resolveSignature(input: SignatureInput, instructions?: string): SignatureWire {
  return compileSignature(input as unknown, instructions).wire;
}

/** Validates inputs against a signature in any form; see CompiledSignature.validateInputs. */
export function validateInputs(sig: SignatureInput, inputs: unknown, options?: ValidateOptions): Record<string, unknown> {
  return compileSignature(sig as unknown).validateInputs(inputs, options);
}

/** Validates outputs against a signature in any form; see CompiledSignature.validateOutputs. */
export function validateOutputs(sig: SignatureInput, outputs: unknown, options?: ValidateOptions): Record<string, unknown> {
  return compileSignature(sig as unknown).validateOutputs(outputs, options);
}
