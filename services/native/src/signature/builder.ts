/**
 * A typed builder for what signature strings cannot say (descriptions, constraints, optional fields):
 *
 *   const sig = signature()
 *     .input("question", t.str(), { desc: "the user's question" })
 *     .input("context", t.list(t.str(), { maxItems: 5 }), { optional: true })
 *     .output("score", t.float(), { ge: 0, le: 1 })
 *     .instructions("Rate how well the context answers the question.")
 *     .build();
 *   sig.validateInputs({ question: "…" }); // typed: { question: string; context?: string[] | null }
 */

import { SignatureError } from "@dspex/protocol";
import { signatureError } from "./errors.js";
import { CompiledSignature } from "./compiled.js";
import { fieldNameProblem } from "./names.js";
import { parseType } from "./parser.js";
import {
  type Constraints,
  type Field,
  formatType,
  type LiteralValue,
  scalar,
  type SignatureWire,
  type TypeExpr,
} from "./types.js";
import { typeFromJsonSchema } from "./schema.js";
import { checkConstraints, checkSignature, checkType } from "./wire.js";

declare const phantom: unique symbol;

/** A type expression with the TypeScript type of its (coerced) values, and constraints for the field. */
export interface TypeDef<T = unknown> {
  readonly expr: TypeExpr;
  readonly constraints?: Constraints;
  readonly [phantom]?: T;
}

export interface RangeOptions {
  ge?: number;
  gt?: number;
  le?: number;
  lt?: number;
}

export interface LengthOptions {
  minLength?: number;
  maxLength?: number;
}

export interface ItemsOptions {
  minItems?: number;
  maxItems?: number;
}

export type FieldOptions = RangeOptions &
  LengthOptions &
  ItemsOptions & {
    desc?: string;
    prefix?: string;
    /** The field may be omitted (its type becomes Optional[T]). */
    optional?: boolean;
  };

function def<T>(expr: TypeExpr, constraints?: Constraints): TypeDef<T> {
  return constraints && Object.keys(constraints).length > 0
    ? Object.freeze({ expr, constraints })
    : Object.freeze({ expr });
}

function plain(inner: TypeDef<unknown>, where: string): TypeExpr {
  if (inner.constraints) {
    throw new SignatureError(
      `constraints can only apply to a field's own value, not to ${where} (the wire format has field-level constraints)`,
    );
  }
  return inner.expr;
}

function constraintsFrom(expr: TypeExpr, o: RangeOptions & LengthOptions & ItemsOptions | undefined): Constraints | undefined {
  if (!o) return undefined;
  const c: Record<string, number> = {};
  for (const k of ["gt", "ge", "lt", "le"] as const) if (o[k] !== undefined) c[k] = o[k];
  const lengthKeys: [keyof LengthOptions | keyof ItemsOptions, "min_length" | "max_length"][] = [
    ["minLength", "min_length"],
    ["maxLength", "max_length"],
    ["minItems", "min_length"],
    ["maxItems", "max_length"],
  ];
  const kind = expr.kind === "optional" ? expr.inner.kind : expr.kind;
  for (const [k, wire] of lengthKeys) {
    const v = o[k];
    if (v === undefined) continue;
    const isItems = k === "minItems" || k === "maxItems";
    if (isItems && kind === "str") {
      throw new SignatureError(`${k} applies to list and dict fields; use ${k.replace("Items", "Length")} for str`);
    }
    if (!isItems && (kind === "list" || kind === "dict")) {
      throw new SignatureError(`${k} applies to str fields; use ${k.replace("Length", "Items")} for ${kind}`);
    }
    if (c[wire] !== undefined && c[wire] !== v) throw new SignatureError(`conflicting ${wire} constraints`);
    c[wire] = v;
  }
  return Object.keys(c).length > 0 ? (checkConstraints(c, expr) as Constraints) : undefined;
}

/** A field of an object type with what a bare type cannot say: its description, constraints, optionality. */
export interface ObjectFieldDef<T = unknown, Optional extends boolean = boolean> {
  readonly field: TypeDef<T>;
  readonly desc?: string;
  readonly optional: Optional;
}

type FieldSpec = TypeDef<unknown> | ObjectFieldDef<unknown, boolean>;
type ValueOf<F> = F extends ObjectFieldDef<infer T, boolean> ? T : F extends TypeDef<infer T> ? T : never;
type OptionalKeys<F> = { [K in keyof F]: F[K] extends ObjectFieldDef<unknown, true> ? K : never }[keyof F];
type RequiredKeys<F> = Exclude<keyof F, OptionalKeys<F>>;
/** The TypeScript type of an object type's values (an absent optional field arrives as null). */
export type ObjectValue<F> = Simplify<{ [K in RequiredKeys<F>]: ValueOf<F[K]> } & { [K in OptionalKeys<F>]?: ValueOf<F[K]> | null }>;

function objectExpr(name: string, fields: Record<string, FieldSpec>, description?: string): TypeExpr {
  const wire = Object.entries(fields).map(([fieldName, spec]) => {
    const def = "field" in spec ? spec.field : spec;
    const extra = "field" in spec ? spec : undefined;
    return {
      name: fieldName,
      type: def.expr,
      ...(extra?.desc !== undefined ? { desc: extra.desc } : {}),
      ...(extra?.optional ? { required: false } : {}),
      ...(def.constraints ? { constraints: def.constraints } : {}),
    };
  });
  return checkType({ kind: "object", name, ...(description !== undefined ? { description } : {}), fields: wire }, name);
}

/** Type constructors for the builder. */
export const t = {
  str: (options?: LengthOptions): TypeDef<string> => def(scalar.str, constraintsFrom(scalar.str, options)),
  int: (options?: RangeOptions): TypeDef<number> => def(scalar.int, constraintsFrom(scalar.int, options)),
  float: (options?: RangeOptions): TypeDef<number> => def(scalar.float, constraintsFrom(scalar.float, options)),
  bool: (): TypeDef<boolean> => def(scalar.bool),
  any: (): TypeDef<unknown> => def(scalar.any),
  list: <T>(items: TypeDef<T>, options?: ItemsOptions): TypeDef<T[]> => {
    const expr: TypeExpr = Object.freeze({ kind: "list", items: plain(items, "list items") });
    return def(expr, constraintsFrom(expr, options));
  },
  dict: <V>(
    keys: TypeDef<string> | TypeDef<number> | TypeDef<boolean>,
    values: TypeDef<V>,
    options?: ItemsOptions,
  ): TypeDef<Record<string, V>> => {
    const expr = checkType({ kind: "dict", keys: plain(keys, "dict keys"), values: plain(values, "dict values") }, "dict");
    return def(expr, constraintsFrom(expr, options));
  },
  optional: <T>(inner: TypeDef<T>): TypeDef<T | null> =>
    def(inner.expr.kind === "optional" ? inner.expr : Object.freeze({ kind: "optional", inner: inner.expr }), inner.constraints),
  literal: <const V extends readonly [LiteralValue, ...LiteralValue[]]>(...values: V): TypeDef<V[number]> =>
    def(checkType({ kind: "literal", values }, "literal")),
  /** A type from DSPy's annotation syntax, e.g. `t.parse("dict[str, list[int]]")`; `types` names object types. */
  parse: (text: string, types?: Readonly<Record<string, TypeDef<unknown>>>): TypeDef<unknown> =>
    def(parseType(text, types ? Object.fromEntries(Object.entries(types).map(([k, v]) => [k, v.expr])) : undefined)),
  /**
   * An object type — a pydantic model on the worker (`pydantic.create_model(name, ...)`), so DSPy's adapters ask
   * the LM for it as JSON and parse it: `t.object("Person", { name: t.str(), age: t.field(t.int({ ge: 0 }), {
   * optional: true }) })`. Values are typed: `{ name: string; age?: number | null }`.
   */
  object: <const F extends Record<string, FieldSpec>>(name: string, fields: F, options: { description?: string } = {}): TypeDef<ObjectValue<F>> =>
    def(objectExpr(name, fields, options.description)),
  /** The enclosing object type `name`, for recursive models: `t.object("Comment", { text: t.str(), replies: t.list(t.ref("Comment")) })`. */
  ref: (name: string): TypeDef<unknown> => def(Object.freeze({ kind: "ref", name }) as TypeExpr),
  /** An object field with a description, or that may be missing (`optional: true`). */
  field: <T, const O extends boolean = false>(type: TypeDef<T>, options: { desc?: string; optional?: O } = {}): ObjectFieldDef<T, O> =>
    Object.freeze({ field: type, ...(options.desc !== undefined ? { desc: options.desc } : {}), optional: (options.optional ?? false) as O }),
  /** A type from a JSON Schema (an object with properties → an object type named by `title` or `name`). */
  fromJsonSchema: (schema: Record<string, unknown>, name?: string): TypeDef<unknown> => def(typeFromJsonSchema(schema, name ?? "Model")),
} as const;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type Empty = Record<never, never>;

interface Entry {
  side: "input" | "output";
  field: Field;
}

/** An immutable builder: every call returns a new builder. */
export class SignatureBuilder<I extends object = Empty, O extends object = Empty> {
  private constructor(
    private readonly entries: readonly Entry[],
    private readonly text: string | undefined,
  ) {}

  /** A new, empty builder. */
  static create(): SignatureBuilder {
    return new SignatureBuilder([], undefined);
  }

  /** Adds an input field. Without a type it is `str`, as in DSPy. */
  input<N extends string>(name: N): SignatureBuilder<I & { [K in N]: string }, O>;
  input<N extends string, T>(
    name: N,
    type: TypeDef<T> | string,
    options: FieldOptions & { optional: true },
  ): SignatureBuilder<I & { [K in N]?: T | null }, O>;
  input<N extends string, T>(
    name: N,
    type: TypeDef<T> | string,
    options?: FieldOptions,
  ): SignatureBuilder<I & { [K in N]: T }, O>;
  input(name: string, type?: TypeDef<unknown> | string, options?: FieldOptions): SignatureBuilder<object, O> {
    return this.add("input", name, type, options);
  }

  /** Adds an output field. Without a type it is `str`, as in DSPy. */
  output<N extends string>(name: N): SignatureBuilder<I, O & { [K in N]: string }>;
  output<N extends string, T>(
    name: N,
    type: TypeDef<T> | string,
    options: FieldOptions & { optional: true },
  ): SignatureBuilder<I, O & { [K in N]: T | null }>;
  output<N extends string, T>(
    name: N,
    type: TypeDef<T> | string,
    options?: FieldOptions,
  ): SignatureBuilder<I, O & { [K in N]: T }>;
  output(name: string, type?: TypeDef<unknown> | string, options?: FieldOptions): SignatureBuilder<I, object> {
    return this.add("output", name, type, options);
  }

  /** Sets the instructions (DSPy generates default instructions when none are given). */
  instructions(text: string): SignatureBuilder<I, O> {
    if (typeof text !== "string") throw new SignatureError("instructions must be a string");
    return new SignatureBuilder(this.entries, text);
  }

  /** The signature in wire form, checked. */
  toWire(): SignatureWire {
    const wire: { instructions?: string; inputs: Field[]; outputs: Field[] } = {
      ...(this.text !== undefined ? { instructions: this.text } : {}),
      inputs: this.entries.filter((e) => e.side === "input").map((e) => e.field),
      outputs: this.entries.filter((e) => e.side === "output").map((e) => e.field),
    };
    return checkSignature(wire);
  }

  /** Checks the signature and compiles its validators. */
  build(): CompiledSignature<Simplify<I> & Record<string, unknown>, Simplify<O> & Record<string, unknown>> {
    return new CompiledSignature(this.toWire());
  }

  private add<X>(side: "input" | "output", name: string, type: TypeDef<unknown> | string | undefined, options: FieldOptions = {}): X {
    if (typeof name !== "string") throw new SignatureError(`${side} field name must be a string`);
    const problem = fieldNameProblem(name);
    if (problem) {
      throw signatureError(`${side} field '${name}': ${problem.problem}`, {
        field: name,
        ...(problem.suggestion !== undefined ? { suggestion: problem.suggestion } : {}),
      });
    }
    const existing = this.entries.find((e) => e.field.name === name);
    if (existing) {
      throw new SignatureError(
        existing.side === side ? `duplicate ${side} field '${name}'` : `field '${name}' is both an input and an output`,
        { field: name },
      );
    }
    const td: TypeDef<unknown> = type === undefined ? def(scalar.str) : typeof type === "string" ? t.parse(type) : type;
    if (!td || typeof td !== "object" || !("expr" in td)) {
      throw new SignatureError(`${side} field '${name}': the type must come from t.*() or be a type string`, { field: name });
    }
    let expr = td.expr;
    if (options.optional && expr.kind !== "optional") expr = Object.freeze({ kind: "optional", inner: expr });
    let constraints: Constraints | undefined;
    try {
      const own = constraintsFrom(expr, options);
      const merged = { ...(td.constraints ?? {}), ...(own ?? {}) };
      constraints = Object.keys(merged).length > 0 ? checkConstraints(merged, expr) : undefined;
    } catch (err) {
      if (err instanceof SignatureError) {
        throw new SignatureError(`${side} field '${name}' (${formatType(expr)}): ${err.message}`, { field: name, cause: err });
      }
      throw err;
    }
    const field: Field = Object.freeze({
      name,
      type: expr,
      ...(options.desc !== undefined ? { desc: options.desc } : {}),
      ...(options.prefix !== undefined ? { prefix: options.prefix } : {}),
      ...(constraints ? { constraints } : {}),
    });
    return new SignatureBuilder([...this.entries, { side, field }], this.text) as X;
  }
}

/** Starts a typed signature builder. */
export function signature(): SignatureBuilder {
  return SignatureBuilder.create();
}
