/**
 * The GraphQL schema generated from the resource definitions (resource.ts): an object type per titled JSON
 * Schema, a page type per listing, a query field per list/get operation, a mutation field per create/action
 * operation (its body as an input type), free-form objects as the `JSON` scalar. Resolvers run the same
 * operations as the REST routes, after the same schema checks (validation.ts) and the same scope checks.
 */
import { ValidationError } from "@dspex/protocol";
import type { JsonSchema } from "./registry-schemas.js";
import type { Operation, Resource } from "./resource.js";
import { paramsSchema, querySchema } from "./rest.js";
import { check } from "./validation.js";

interface Built {
  types: Map<string, string>;
}

const SCALARS: Record<string, string> = { string: "String", integer: "Int", number: "Float", boolean: "Boolean" };

function baseType(schema: JsonSchema): { type: string | undefined; nullable: boolean } {
  const t = schema.type;
  if (Array.isArray(t)) {
    const rest = t.filter((x) => x !== "null");
    return { type: rest.length === 1 ? (rest[0] as string) : undefined, nullable: t.includes("null") };
  }
  return { type: t as string | undefined, nullable: false };
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** The GraphQL output type of a schema (registering object types as it meets them). */
function outputType(schema: JsonSchema, b: Built, required: boolean): string {
  const { type, nullable } = baseType(schema);
  let name: string;
  if (type === "array") name = `[${outputType(schema.items as JsonSchema, b, true)}]`;
  else if (type === "object" && typeof schema.title === "string" && schema.properties) name = objectType(schema, b);
  else if (type && SCALARS[type]) name = SCALARS[type]!;
  else name = "JSON";
  return required && !nullable ? `${name}!` : name;
}

function objectType(schema: JsonSchema, b: Built): string {
  const title = schema.title as string;
  if (b.types.has(title)) return title;
  b.types.set(title, ""); // reserve (recursive types)
  const props = schema.properties as Record<string, JsonSchema>;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const fields = Object.entries(props).map(([k, v]) => `  ${k}: ${outputType(v, b, required.has(k))}`);
  const doc = typeof schema.description === "string" ? `"""${schema.description.replace(/"""/g, "'")}"""\n` : "";
  b.types.set(title, `${doc}type ${title} {\n${fields.join("\n")}\n}`);
  return title;
}

/** Input (argument) types: scalars, lists of scalars, else JSON — the JSON Schema check follows in the resolver. */
function inputType(schema: JsonSchema, required: boolean): string {
  const { type } = baseType(schema);
  let name = "JSON";
  if (type && SCALARS[type]) name = SCALARS[type]!;
  else if (schema.enum) name = "String";
  return required ? `${name}!` : name;
}

function inputObject(op: Operation, b: Built): string {
  const body = op.body!;
  const title = `${cap(op.name)}Input`;
  const required = new Set((body.required as string[] | undefined) ?? []);
  const fields = Object.entries(body.properties as Record<string, JsonSchema>).map(([k, v]) => `  ${k}: ${inputType(v, required.has(k))}`);
  b.types.set(title, `input ${title} {\n${fields.join("\n")}\n}`);
  return title;
}

function args(op: Operation, b: Built): string {
  const list: string[] = [];
  for (const [k, v] of Object.entries(op.params ?? {})) list.push(`${k}: ${inputType(v, true)}`);
  for (const [k, v] of Object.entries(op.query ?? {})) list.push(`${k}: ${inputType(v, false)}`);
  if (op.body) list.push(`input: ${inputObject(op, b)}${((op.body.required as string[] | undefined) ?? []).length > 0 ? "!" : ""}`);
  return list.length ? `(${list.join(", ")})` : "";
}

export interface GeneratedSchema {
  sdl: string;
  /** Operation per GraphQL field name. */
  queries: Map<string, Operation>;
  mutations: Map<string, Operation>;
}

/** SDL for the resources, plus extra type definitions and root fields (subscriptions) given as SDL. */
export function generateSchema(resources: Resource[], extra: { types?: JsonSchema[]; subscriptions?: string[] } = {}): GeneratedSchema {
  const b: Built = { types: new Map() };
  const queries = new Map<string, Operation>();
  const mutations = new Map<string, Operation>();
  const q: string[] = [];
  const m: string[] = [];
  for (const r of resources) {
    for (const op of r.operations) {
      const doc = `  "${op.summary.replace(/"/g, "'")} (scope ${op.scope})"\n`;
      const line = `${doc}  ${op.name}${args(op, b)}: ${outputType(op.response, b, true)}`;
      if (op.kind === "list" || op.kind === "get") {
        q.push(line);
        queries.set(op.name, op);
      } else {
        m.push(line);
        mutations.set(op.name, op);
      }
    }
  }
  for (const t of extra.types ?? []) objectType(t, b);
  const sdl = [
    '"Free-form JSON: objects whose fields the JSON Schema of the REST API describes."',
    "scalar JSON",
    ...b.types.values(),
    `type Query {\n${q.join("\n")}\n}`,
    `type Mutation {\n${m.join("\n")}\n}`,
    ...(extra.subscriptions?.length ? [`type Subscription {\n${extra.subscriptions.map((s) => `  ${s}`).join("\n")}\n}`] : []),
  ].join("\n\n");
  return { sdl, queries, mutations };
}

/** The operation's input from GraphQL arguments, checked against the REST API's schemas. */
export function operationInput(op: Operation, a: Record<string, unknown>) {
  const pick = (keys: string[]) => Object.fromEntries(keys.filter((k) => a[k] !== undefined && a[k] !== null).map((k) => [k, a[k]]));
  const params = pick(Object.keys(op.params ?? {}));
  const query = pick(Object.keys(op.query ?? {}));
  const body = (a.input ?? {}) as Record<string, unknown>;
  const ps = paramsSchema(op);
  const qs = querySchema(op);
  if (ps) check(ps, params, true);
  if (qs) check(qs, query, true);
  if (op.body) check(op.body, body, false, "input");
  else if (a.input !== undefined) throw new ValidationError("this field takes no input", { field: "input" });
  return { params, query, body };
}
