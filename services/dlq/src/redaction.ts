/**
 * A request body reduced to what it was without what it said: the redacted dead letter
 * (schemas/dlq.schema.json#/definitions/redactedBody), the same summary the worker makes of the same bytes
 * (workers/dspex_worker/transport/redaction.py; golden vector schemas/vectors/dlq-redacted-cot-full). Sizes are
 * those of the values in the original bytes, never re-encoded; a value's type is its msgpack family.
 */
import { POOLS, decode, requestSubject, type DlqRedactedBody, type MsgpackTypeName } from "@dspex/protocol";

/** The msgpack type family of the value whose encoding starts with this byte. */
export function msgpackType(first: number): MsgpackTypeName {
  if (first <= 0x7f || first >= 0xe0 || (first >= 0xcc && first <= 0xd3)) return "int";
  if ((first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf) return "map";
  if ((first >= 0x90 && first <= 0x9f) || first === 0xdc || first === 0xdd) return "array";
  if ((first >= 0xa0 && first <= 0xbf) || first === 0xd9 || first === 0xda || first === 0xdb) return "str";
  if (first === 0xc0) return "nil";
  if (first === 0xc2 || first === 0xc3) return "bool";
  if (first === 0xc4 || first === 0xc5 || first === 0xc6) return "bin";
  if (first === 0xca || first === 0xcb) return "float";
  return "ext";
}

/**
 * Where the msgpack value starting at `at` ends. Written here because msgpackr decodes values but does not
 * say where one ends; only called on a body that decoded, so the bytes are well-formed.
 */
function skip(d: Uint8Array, at: number): number {
  const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const b = d[at]!;
  const items = (count: number, from: number) => {
    let p = from;
    for (let i = 0; i < count; i++) p = skip(d, p);
    return p;
  };
  if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return at + 1;
  if (b >= 0x80 && b <= 0x8f) return items(2 * (b & 0x0f), at + 1);
  if (b >= 0x90 && b <= 0x9f) return items(b & 0x0f, at + 1);
  if (b >= 0xa0 && b <= 0xbf) return at + 1 + (b & 0x1f);
  switch (b) {
    case 0xcc: case 0xd0: return at + 2;
    case 0xcd: case 0xd1: return at + 3;
    case 0xce: case 0xd2: case 0xca: return at + 5;
    case 0xcf: case 0xd3: case 0xcb: return at + 9;
    case 0xc4: case 0xd9: return at + 2 + d[at + 1]!;
    case 0xc5: case 0xda: return at + 3 + view.getUint16(at + 1);
    case 0xc6: case 0xdb: return at + 5 + view.getUint32(at + 1);
    case 0xdc: return items(view.getUint16(at + 1), at + 3);
    case 0xdd: return items(view.getUint32(at + 1), at + 5);
    case 0xde: return items(2 * view.getUint16(at + 1), at + 3);
    case 0xdf: return items(2 * view.getUint32(at + 1), at + 5);
    case 0xd4: return at + 3;
    case 0xd5: return at + 4;
    case 0xd6: return at + 6;
    case 0xd7: return at + 10;
    case 0xd8: return at + 18;
    case 0xc7: return at + 3 + d[at + 1]!;
    case 0xc8: return at + 4 + view.getUint16(at + 1);
    case 0xc9: return at + 6 + view.getUint32(at + 1);
    default: throw new RangeError(`not a msgpack value at ${at}`);
  }
}

/** The number of entries of the map starting at `at`, and where its first key starts. */
function mapHeader(d: Uint8Array, at: number): [number, number] {
  const b = d[at]!;
  if (b >= 0x80 && b <= 0x8f) return [b & 0x0f, at + 1];
  const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
  if (b === 0xde) return [view.getUint16(at + 1), at + 3];
  if (b === 0xdf) return [view.getUint32(at + 1), at + 5];
  throw new RangeError(`not a msgpack map at ${at}`);
}

/** Per input name, its value's type and size in the body (a map whose `inputs` is a map: checked by the caller). */
function inputFields(d: Uint8Array): Record<string, { type: MsgpackTypeName; bytes: number }> {
  let fields: Record<string, { type: MsgpackTypeName; bytes: number }> = {};
  let [count, p] = mapHeader(d, 0);
  for (let i = 0; i < count; i++) {
    const keyEnd = skip(d, p);
    const key = decode(d.subarray(p, keyEnd));
    if (key !== "inputs") {
      p = skip(d, keyEnd);
      continue;
    }
    fields = {}; // a repeated key: the last one is the one decoding keeps
    let [n, q] = mapHeader(d, keyEnd);
    for (let j = 0; j < n; j++) {
      const nameEnd = skip(d, q);
      const name = String(decode(d.subarray(q, nameEnd)));
      const end = skip(d, nameEnd);
      fields[name] = { type: msgpackType(d[nameEnd]!), bytes: end - nameEnd };
      q = end;
    }
    p = q;
  }
  return fields;
}

/** The pool of a request subject (`dspex.req.<pool>.<key>`), when it is one of the bus's pools. */
function poolOfSubject(subject: string | undefined): string | undefined {
  return subject === undefined ? undefined : POOLS.find((pool) => subject.startsWith(requestSubject(pool, "")));
}

/** The summary a redacted dead letter keeps of a request body published on `subject` (keys in the schema's order). */
export function redactedBody(data: Uint8Array, subject: string | undefined): DlqRedactedBody {
  let body: unknown;
  try {
    body = decode(data);
  } catch {
    body = undefined;
  }
  const map = body !== null && typeof body === "object" && !Array.isArray(body) && !(body instanceof Uint8Array) ? (body as Record<string, unknown>) : {};
  const summary: DlqRedactedBody = { redacted: true, bytes: data.byteLength };
  if (typeof map.id === "string") summary.id = map.id;
  if (typeof map.op === "string") summary.op = map.op;
  const pool = poolOfSubject(subject);
  if (pool !== undefined) summary.pool = pool;
  const inputs = map.inputs;
  if (inputs !== null && typeof inputs === "object" && !Array.isArray(inputs) && !(inputs instanceof Uint8Array)) summary.fields = inputFields(data);
  return summary;
}

/** Whether dead letters keep request bodies: DSPEX_DLQ_KEEP_INPUTS=1 (default: redacted, docs/security.md). */
export function keepInputs(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DSPEX_DLQ_KEEP_INPUTS === "1";
}
